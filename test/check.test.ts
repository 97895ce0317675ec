/**
 * bpftables check: what it reports in iptables-save and nft rulesets (shadowed
 * rules, conflicting duplicates, unreached chains, missing jump targets,
 * loops), with places; and what it must not report (rules it cannot prove
 * covered: stateful matches, negations, partial overlaps, non-terminal verdicts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { systemNameDb } from '../compat/namedb';
import { checkTable } from '../xlate/check';
import { parseRestore } from '../xlate/restore';
import { BIN, tempDir } from './helpers/env';

const table = (rules: string, chains = ''): string =>
  `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${chains}${rules}COMMIT\n`;
const findings = (text: string): string[] =>
  checkTable(parseRestore(text, { file: 'f', db: systemNameDb, counters: false, noValidate: true }).tables[0]!).map((f) => `${f.kind}${f.line ? `@${f.line}` : ''}`);

t.test('what check reports', async (t) => {
  t.same(findings(table('-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -s 10.1.2.3 -p tcp --dport 22 -j DROP\n')), ['shadowed@6'], 'a narrower rule after a wider one that decides');
  t.same(findings(table('-A INPUT -p tcp --dport 1:1000 -j DROP\n-A INPUT -p tcp --dport 80 -j ACCEPT\n')), ['shadowed@6'], 'a port inside an earlier range');
  t.same(findings(table('-A INPUT -i eth+ -j DROP\n-A INPUT -i eth0 -p udp -j ACCEPT\n')), ['shadowed@6'], 'an interface under an earlier wildcard');
  t.same(findings(table('-A INPUT -p udp --dport 53 -j ACCEPT\n-A INPUT -p udp --dport 53 -j DROP\n')), ['conflict@6'], 'the same conditions, another verdict');
  t.same(findings(table('-A INPUT -j A\n', ':A - [0:0]\n:B - [0:0]\n')), ['unreachable'], 'a chain nothing jumps to');
  t.same(findings(table('-A INPUT -j A\n-A A -j B\n-A B -j A\n-A INPUT -j NOWHERE\n', ':A - [0:0]\n:B - [0:0]\n')), ['invalid@10', 'invalid'], 'a missing target and a loop, both');
});

t.test('what check must not report', async (t) => {
  const none = (rules: string, why: string, chains = ''): void => { t.same(findings(table(rules, chains)), [], why); };
  none('-A INPUT -s 10.1.0.0/16 -j ACCEPT\n-A INPUT -s 10.0.0.0/8 -j DROP\n', 'a wider rule after a narrower one');
  none('-A INPUT -p tcp --dport 80:90 -j DROP\n-A INPUT -p tcp --dport 85:95 -j ACCEPT\n', 'ranges that only overlap');
  none('-A INPUT ! -s 10.0.0.0/8 -j DROP\n-A INPUT -s 192.0.2.1 -j ACCEPT\n', 'a negation (not proved)');
  none('-A INPUT -m limit --limit 1/s -j ACCEPT\n-A INPUT -m limit --limit 1/s -j ACCEPT\n', 'stateful matches: each rule has its own bucket');
  none('-A INPUT -s 10.0.0.0/8 -j LOG\n-A INPUT -s 10.0.0.1 -j DROP\n', 'an earlier rule that does not decide (LOG)');
  none('-A INPUT -s 10.0.0.0/8 -j A\n-A INPUT -s 10.0.0.1 -j DROP\n-A A -j RETURN\n', 'an earlier jump (the chain may return)', ':A - [0:0]\n');
  none('-A INPUT -s 10.0.0.0/8 -m conntrack --ctstate NEW -j ACCEPT\n-A INPUT -s 10.0.0.1 -j DROP\n', 'an earlier rule with a condition the later lacks');
});

t.test('bpftables check on files of both syntaxes', async (t) => {
  const dir = tempDir(t, 'bpft-check-');
  const run = (name: string, text: string): ReturnType<typeof spawnSync> => {
    fs.writeFileSync(path.join(dir, name), text);
    return spawnSync(path.join(BIN, 'bpftables'), ['check', path.join(dir, name)], { encoding: 'utf8' });
  };
  const ok = run('ok.rules', table('-A INPUT -p tcp --dport 22 -j ACCEPT\n'));
  t.match(ok, { status: 0, stdout: 'no problems found\n' }, 'a clean ruleset: exit 0');
  const bad = run('bad.rules', table('-A INPUT -j ACCEPT\n-A INPUT -p tcp -j DROP\n'));
  t.match(bad, { status: 1, stdout: /bad\.rules:6: shadowed: rule 2 of INPUT can never match: rule 1 \(line 5\) matches every packet it would and decides first \(accept\)\n1 problem\n/ }, 'a shadowed rule: its file, line and the rule that hides it; exit 1');
  const nft = run('r.nft', 'table inet f {\n chain in { type filter hook input priority 0; ip saddr 10.0.0.0/8 accept; ip saddr 10.9.9.9 drop; }\n chain spare { accept }\n}\n');
  t.match(nft, { status: 1, stdout: /unreachable: chain spare is never reached from a base chain\n.*r\.nft:2: shadowed: rule 2 of in can never match/s }, 'nft: named by its chains, once for both families');
  const both = run('both.nft', 'table inet f {\n chain in { type filter hook input priority 0; tcp dport 22 accept; tcp dport 22 drop; }\n}\n');
  t.equal(both.stdout, `${path.join(dir, 'both.nft')}:2: conflict: rule 2 of in (drop) has the same conditions as rule 1 (line 2) (accept): it never applies\n1 problem\n`, 'nft inet: a rule both families hold is reported once');
  t.match(run('broken.rules', '*filter\n-A INPUT -x\n'), { status: 2 }, 'a file that does not parse: exit 2');
});

t.test('check --json: the same findings as data', async (t) => {
  const dir = tempDir(t, 'bpft-checkjson-');
  const file = path.join(dir, 'r.rules');
  fs.writeFileSync(file, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:lonely - [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -p tcp -j DROP\nCOMMIT\n');
  const text = spawnSync(path.join(BIN, 'bpftables'), ['check', file], { encoding: 'utf8' });
  const json = spawnSync(path.join(BIN, 'bpftables'), ['check', '--json', file], { encoding: 'utf8' });
  t.equal(json.status, 1, 'exit 1, as without --json');
  const data = JSON.parse(json.stdout) as { findings: { kind: string; line?: number; file: string; message: string }[] };
  t.same(data.findings.map((f) => `${f.file}${f.line ? `:${f.line}` : ''}: ${f.kind}: ${f.message}`), text.stdout.split('\n').filter((l) => l.includes(': ')),
    'each finding, as the text form gives it');
  t.ok(data.findings.some((f) => f.kind === 'shadowed' && f.line === 7) && data.findings.some((f) => f.kind === 'unreachable'), 'the shadowed rule and the chain never reached');
});
