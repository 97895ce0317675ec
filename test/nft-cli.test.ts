/**
 * bin/nft: `nft -c` checks rulesets completely (compiled and verified by the
 * kernel, nothing attached), answers in nft's error form, refuses what
 * bpftables does not support yet by name, never crashes or hangs on
 * malformed input (nftables' own bogons), keeps includes inside their search
 * path; -f without -c loads (test/nft-live has the packets), and options
 * not honoured yet are refused by name.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ip, nsExec, uniqueName } from '../compat/lab';
import { BIN, prepareState, requireKernel, sharedDir } from './helpers/env';
import { systemNameDb } from '../compat/namedb';
import { BpftablesError } from '../xlate/errors';
import { baseChainTables, loadNft } from '../xlate/nft';
import { validateTable } from '../xlate/validate';

const GOOD = `#!/usr/sbin/nft -f
flush ruleset
define ssh = 22
table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		ip saddr 192.0.2.0/24 drop
		ip6 saddr 2001:db8::/32 drop
		tcp dport { $ssh, 80, 443 } counter accept
		udp dport 1000-2000 jump udp_in
	}
	chain udp_in {
		udp sport < 1024 drop
	}
}
`;

t.test('nft -c checks what it supports, refuses the rest by name, never crashes', async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const ns = uniqueName('N');
  ip('netns', 'add', ns);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-nft-'));
  t.teardown(() => {
    nsExec(ns, path.join(BIN, 'bpftables'), ['flush']);
    try { ip('netns', 'del', ns); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const nft = (args: string[], input?: string): ReturnType<typeof nsExec> => nsExec(ns, path.join(BIN, 'nft'), args, input);
  const file = (name: string, text: string): string => { const f = path.join(dir, name); fs.mkdirSync(path.dirname(f), { recursive: true }); fs.writeFileSync(f, text); return f; };

  const good = file('good.nft', GOOD);
  t.equal(nft(['-c', '-f', good]).status, 0, 'a supported ruleset checks');
  t.equal(nsExec(ns, 'nft', ['-c', '-f', good]).status, 0, 'and the kernel\'s nft accepts it too');
  t.equal(nft(['-c', '-f', '-'], GOOD).status, 0, '-f - reads standard input');
  t.equal(nft(['-f', good]).status, 0, 'without -c it loads');
  t.match(nft(['list', 'ruleset']), { status: 0, stdout: /tcp dport \{ 22, 80, 443 \} counter packets 0 bytes 0 accept/ }, 'and lists');
  t.match(nft(['-j', '-f', good]), { status: 1, stderr: /JSON input .* is not supported by bpftables yet/ }, 'JSON input is refused by name, not ignored');
  t.equal(nft(['flush', 'ruleset']).status, 0, 'flush ruleset');
  t.equal(nft(['list', 'ruleset']).stdout, '', 'leaves nothing to list');
  const bad = file('bad.nft', GOOD.replace('udp sport < 1024 drop', 'udp sport < 1024 queue'));
  t.match(nft(['-c', '-f', bad]), { status: 1, stderr: `${bad}:15:20-24: Error: "queue" is not supported by bpftables yet\n\t\tudp sport < 1024 queue\n                   ^^^^^\n` }, 'an unsupported statement: nft\'s error form, file, line, columns');
  t.match(nft(['-c', 'add', 'table', 'ip', 't']), { status: 0 }, 'commands on the command line');
  t.match(nft(['-c', '-f', file('loop.nft', 'table ip t {\n chain a { type filter hook input priority 0; jump b }\n chain b { jump c }\n chain c { jump b }\n}\n')]), { status: 1, stderr: /loop/ }, 'a jump loop is refused');

  // includes: beside the including file, -I directories, globs; never out of the directory searched
  file('inc/rules/a.nft', 'table ip a { chain c { type filter hook input priority 0; accept } }\n');
  file('inc/rules/b.nft', 'table ip b { chain c { type filter hook output priority 0; accept } }\n');
  file('secret.nft', 'table ip s { }\n');
  fs.symlinkSync(path.join(dir, 'secret.nft'), path.join(dir, 'inc', 'rules', 'link.nft'));
  t.equal(nft(['-c', '-f', file('inc/main.nft', 'include "rules/*.nft"\n')]).status, 1, 'a glob that takes in a link pointing out is refused');
  fs.rmSync(path.join(dir, 'inc', 'rules', 'link.nft'));
  t.equal(nft(['-c', '-f', path.join(dir, 'inc', 'main.nft')]).status, 0, 'a glob beside the including file');
  t.equal(nft(['-c', '-I', path.join(dir, 'inc', 'rules'), '-f', file('other/x.nft', 'include "a.nft"\n')]).status, 0, 'an -I directory');
  t.match(nft(['-c', '-f', file('inc/escape.nft', 'include "../secret.nft"\n')]), { status: 1, stderr: /include "\.\.\/secret\.nft" leads out of/ }, '.. cannot leave the search directory');
  t.match(nft(['-c', '-f', file('inc/missing.nft', 'include "nope.nft"\n')]), { status: 1, stderr: /File not found: nope\.nft/ }, 'a missing include');
  t.match(nft(['-c', '-f', file('inc/self.nft', 'include "self.nft"\n')]), { status: 1, stderr: /include nested more than 16 deep/ }, 'an include of itself ends');

  const crashed = (r: ReturnType<typeof nsExec>): boolean => r.status === null || (r.status !== 0 && r.status !== 1) || /\n\s+at .*\(.*:\d+:\d+\)/.test(r.stderr);
  const bogons = sharedDir('nftables/bogons/nft-f');
  if (bogons) {
    const names = fs.readdirSync(bogons);
    const wrong = names.filter((n) => { const r = nft(['-c', '-f', path.join(bogons, n)]); return r.status !== 1 || !/Error: /.test(r.stderr) || crashed(r); });
    t.same(wrong, [], `all ${names.length} bogons exit 1 with an error message`);
  }
  // nftables' own dumps and examples: each checks, or is refused with a message (nft -c over every file is in
  // npm run conformance; here they go through the front end in this process, without the kernel)
  for (const sub of ['shell-dumps', 'files']) {
    const d = sharedDir(`nftables/${sub}`);
    if (!d) continue;
    let ok = 0, refused = 0;
    const untyped: string[] = [];
    for (const n of fs.readdirSync(d)) {
      try {
        for (const x of baseChainTables(loadNft(fs.readFileSync(path.join(d, n), 'utf8'), n, { db: systemNameDb }))) validateTable(x.ir);
        ok++;
      } catch (e) {
        if (e instanceof BpftablesError) refused++; else untyped.push(`${n}: ${(e as Error).stack}`);
      }
    }
    t.same(untyped, [], `${sub}: ${ok} accepted, ${refused} refused with a message, nothing else thrown`);
  }
});
