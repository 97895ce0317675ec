/**
 * What a distribution ships besides the commands: man pages and bash
 * completion generated from docs/commands.json and each command's --help
 * (scripts/manpages.js), the systemd units (packaging/systemd), and the
 * boot-time restore they run (bpftables boot-restore), proved in a namespace.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nsExec } from '../compat/lab';
import { BIN, prepareState, REPO, requireKernel, tempDir } from './helpers/env';
import { throwawayNamespace } from './helpers/live';

const commands = fs.readdirSync(BIN);

t.test('a man page for every command, holding its --help, that groff renders without warnings', async (t) => {
  const env = { ...process.env, NODE_OPTIONS: '' };
  for (const cmd of commands) {
    const page = path.join(REPO, 'dist', 'man', `${cmd}.8`);
    t.ok(fs.existsSync(page), `${cmd}.8`);
    if (!fs.existsSync(page)) continue;
    const text = fs.readFileSync(page, 'utf8');
    const usage = spawnSync(path.join(BIN, cmd), ['--help'], { encoding: 'utf8', env }).stdout.split('\n').find((l) => l.trim())!;
    t.ok(text.includes(usage.replace(/\\/g, '\\e').replace(/\t/g, '        ')), `${cmd}.8 holds the first line of --help: ${usage}`);
    t.match(text, new RegExp(`^\\.SH NAME\\n${cmd} \\\\- \\S`, 'm'), `${cmd}.8 has a NAME line with a summary`);
    if (spawnSync('which', ['groff']).status !== 0 && process.env.CI === 'true') t.fail('groff is missing (apt install groff-base)');
    if (spawnSync('which', ['groff']).status === 0) {
      const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', page], { encoding: 'utf8' });
      t.equal(r.stderr, '', `${cmd}.8: groff has nothing to say`);
    }
  }
  const source = JSON.parse(fs.readFileSync(path.join(REPO, 'docs', 'commands.json'), 'utf8')) as { commands: Record<string, unknown> };
  t.same(Object.keys(source.commands).sort(), [...commands].sort(), 'docs/commands.json describes exactly the commands of bin/');
});

t.test('bash completion offers each command\'s options and bpftables\' subcommands', async (t) => {
  const file = path.join(REPO, 'dist', 'completion', 'bpftables');
  const complete = (words: string[]): string[] => {
    const script = `source ${JSON.stringify(file)}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ` +
      `_bpftables_${words[0]!.replace(/-/g, '_')}; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return spawnSync('bash', ['-c', script], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  };
  t.same(complete(['iptables-restore', '--co']), ['--counters']);
  t.same(complete(['bpftables', 'mi']), ['migrate']);
  t.ok(complete(['iptables', '--']).includes('--append'), 'iptables --append');
  t.ok(complete(['nft', '-']).includes('--check'), 'nft --check');
  for (const cmd of commands) t.match(fs.readFileSync(file, 'utf8'), new RegExp(`complete -o default -F \\S+ ${cmd}\\n`), `${cmd} is completed`);
});

t.test('the systemd units pass systemd-analyze verify', async (t) => {
  if (spawnSync('which', ['systemd-analyze']).status !== 0) {
    if (process.env.CI === 'true') t.fail('systemd-analyze is missing (apt install systemd)');
    else t.comment('skipped: no systemd-analyze');
    return;
  }
  const dir = tempDir(t, 'bpft-units-');
  for (const u of fs.readdirSync(path.join(REPO, 'packaging', 'systemd'))) {
    // the commands as a package installs them are /usr/sbin/...; here, the checkout's
    fs.writeFileSync(path.join(dir, u), fs.readFileSync(path.join(REPO, 'packaging', 'systemd', u), 'utf8').replace(/\/usr\/sbin\//g, `${BIN}/`));
  }
  const units = fs.readdirSync(dir).map((u) => path.join(dir, u));
  t.same(fs.readdirSync(dir).sort(), ['bpftables-logd.service', 'bpftables-restore.service']);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
  t.equal(r.status, 0, `verify: ${r.stderr}`);
  const restore = fs.readFileSync(units.find((u) => u.endsWith('restore.service'))!, 'utf8');
  t.match(restore, /^Before=network-pre\.target/m, 'the restore runs before the network comes up');
  t.match(restore, /^ExecStart=\S+\/bpftables boot-restore$/m);
});

t.test('boot-restore restores rules.v4 and rules.v6, skips what is absent, and one failure does not stop the other', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'boot');
  const dir = tempDir(t, 'bpft-boot-');
  const v4 = path.join(dir, 'rules.v4'), v6 = path.join(dir, 'rules.v6'), defaults = path.join(dir, 'default');
  fs.writeFileSync(v4, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n');
  fs.writeFileSync(v6, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s fd00::/8 -j DROP\nCOMMIT\n');
  fs.writeFileSync(defaults, `# settings\nRULES_V4=${v4}\nRULES_V6="${v6}"\n`);
  const run = (): ReturnType<typeof nsExec> => nsExec(ns, path.join(BIN, 'bpftables'), ['boot-restore'], undefined, { ...process.env, BPFTABLES_DEFAULTS: defaults });
  let r = run();
  t.equal(r.status, 0, `both restored: ${r.stdout}${r.stderr}`);
  t.match(nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout, /:FORWARD DROP[\s\S]*-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT/);
  t.match(nsExec(ns, path.join(BIN, 'ip6tables-save'), []).stdout, /-A INPUT -s fd00::\/8 -j DROP/);
  fs.writeFileSync(v4, '*filter\n-A INPUT -j NOSUCHCHAIN\nCOMMIT\n');
  fs.writeFileSync(v6, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s fd01::/16 -j DROP\nCOMMIT\n');
  r = run();
  t.equal(r.status, 1, 'a file that fails makes the exit status 1');
  t.match(nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout, /--dport 22/, 'and leaves that family as it was');
  t.match(nsExec(ns, path.join(BIN, 'ip6tables-save'), []).stdout, /fd01::\/16/, 'while the other family is restored');
  fs.rmSync(v4); fs.rmSync(v6);
  r = run();
  t.equal(r.status, 0, 'absent files: nothing to do');
  t.match(r.stdout, /rules\.v4: not there/);
  // an nft ruleset when configured, as nftables.service loads /etc/nftables.conf
  const conf = path.join(dir, 'nftables.conf');
  fs.writeFileSync(conf, '#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 23 drop\n\t}\n}\n');
  fs.writeFileSync(defaults, `NFT_CONF=${conf}\n`);
  r = run();
  t.equal(r.status, 0, `NFT_CONF is loaded ${r.stderr}`);
  t.match(nsExec(ns, path.join(BIN, 'nft'), ['list', 'ruleset']).stdout, /tcp dport 23 drop/, 'and nft lists it');
  fs.writeFileSync(conf, 'table inet filter {\n\tchain input {\n\t\ttcp dport 24 snat to 1.2.3.4\n\t}\n}\n');
  r = run();
  t.equal(r.status, 1, 'an nft file that fails makes the exit status 1');
  t.match(r.stderr, /snat/, 'naming what failed');
  t.match(nsExec(ns, path.join(BIN, 'nft'), ['list', 'ruleset']).stdout, /tcp dport 23 drop/, 'and leaves the ruleset as it was');
});
