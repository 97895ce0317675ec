/**
 * The commands run from dist/bundle.js with V8's code cache (scripts/bundle.js,
 * scripts/load.js): every command's module is in the bundle, the cache the
 * build wrote is accepted by node with the commands' flags, and the bundle
 * behaves as the plain modules do.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, REPO } from './helpers/env';

const LOAD = path.join(REPO, 'dist', 'load.js');

t.test('every command loads its module from the bundle', async (t) => {
  const first = fs.readFileSync(path.join(BIN, 'iptables-restore'), 'utf8').split('\n')[0]!;
  const flags = (require(LOAD) as { nodeFlags(): string[] }).nodeFlags();
  for (const f of fs.readdirSync(BIN)) {
    const text = fs.readFileSync(path.join(BIN, f), 'utf8');
    const m = /require\('\.\.\/dist\/load\.js'\)\.load\('([^']+)'\)\.(\w+)\(\)/.exec(text);
    t.ok(m, `${f} starts through dist/load.js`);
    if (!m) continue;
    t.equal(text.split('\n')[0], first, `${f}: the node flags the cache was made with`);
    t.match(first, /^#!\/usr\/bin\/env -S -u NODE_EXTRA_CA_CERTS node /, 'node starts without the extra CA certificates');
    const r = spawnSync(process.execPath, [...flags, '-e',
      `const l = require(${JSON.stringify(LOAD)}); const m = l.load(${JSON.stringify(m[1])}); process.stdout.write(JSON.stringify([typeof m[${JSON.stringify(m[2])}], l.cacheAccepted()]))`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    t.equal(r.stdout, '["function",true]', `${f}: ${m[1]} is in the bundle, its entry point exists, the code cache is accepted ${r.stderr}`);
  }
});

t.test('the bundle and the plain modules answer alike', async (t) => {
  const fixture = path.join(REPO, 'fixtures', 'canonical.rules');
  for (const [cmd, args] of [['iptables-translate', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']], ['iptables-restore-translate', ['-f', fixture]], ['iptables', ['-h']], ['bpftables', ['check', fixture]]] as const) {
    const run = (env: NodeJS.ProcessEnv) => spawnSync(path.join(BIN, cmd), args, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } });
    const bundled = run({}), plain = run({ BPFTABLES_NO_BUNDLE: '1' });
    t.same([bundled.status, bundled.stdout.replace(/^# .*\n/gm, ''), bundled.stderr], [plain.status, plain.stdout.replace(/^# .*\n/gm, ''), plain.stderr], `${cmd} ${args.join(' ')}`);
    t.ok(bundled.stdout.length > 0 || bundled.stderr.length > 0, `${cmd} said something`);
  }
});
