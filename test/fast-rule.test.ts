/**
 * The fast path for plain rule lines (xlate/fast-rule) must build exactly
 * the rule the generic parser builds, and take no line the generic parser
 * refuses: checked on every `-A` line of the fixtures and the conformance
 * dumps, and on generated lines full of near misses.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { splitArgs } from '../grammar/restore-lexer';
import { fastRule } from '../xlate/fast-rule';
import { parseRuleArgs } from '../xlate/rule-parse';
import { parseRestore } from '../xlate/restore';
import { saveTable } from '../xlate/save';
import { REPO, SHARED } from './helpers/env';
import { systemNameDb } from '../compat/namedb';

const db = systemNameDb;
const src = { file: 'f', line: 1 };

/** What the generic parser makes of the line: the one appended rule as JSON, or why not. */
function generic(line: string): string {
  try {
    const cmd = parseRuleArgs(splitArgs(line), { db, family: 4, warn: () => { throw new Error('warned'); } });
    if (cmd.op !== 'append' || cmd.rules.length !== 1) return 'not one appended rule';
    cmd.rules[0]!.src = src;
    return JSON.stringify({ chain: cmd.chain, rule: cmd.rules[0] });
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
}

/** Compare on `lines`; returns how many the fast path took. */
function compare(t: Test, lines: string[]): number {
  let taken = 0;
  for (const line of lines) {
    const fast = fastRule(line, db, src);
    if (!fast) continue;
    taken++;
    const want = generic(line);
    // the key order too: the stored ruleset is this object's JSON
    if (JSON.stringify(fast) !== want) t.fail(`fast path differs on ${JSON.stringify(line)}`, { found: JSON.stringify(fast), wanted: want });
  }
  return taken;
}

t.test('every -A line of the fixtures and dumps', async (t) => {
  const files = fs.readdirSync(path.join(REPO, 'fixtures')).filter((f) => f.endsWith('.rules')).map((f) => path.join(REPO, 'fixtures', f));
  const dumps = path.join(SHARED, 'iptables', 'dumps');
  if (fs.existsSync(dumps)) files.push(...fs.readdirSync(dumps).map((f) => path.join(dumps, f)));
  const lines = files.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n')).filter((l) => l.startsWith('-A '));
  const taken = compare(t, lines);
  t.ok(taken > 20, `the fast path took ${taken} of ${lines.length} lines`);
});

t.test('generated lines, valid and near misses', async (t) => {
  // a small deterministic generator (xorshift) over the fast form's parts and their near misses
  let seed = 0x2545f491;
  const rnd = (n: number): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
  const pick = <T>(xs: T[]): T => xs[rnd(xs.length)]!;
  const maybe = (p: number, s: () => string): string => (rnd(100) < p ? s() : '');
  const addrs = ['10.0.0.1', '10.0.0.1/32', '10.1.2.0/24', '0.0.0.0/0', '192.168.1.1/16', '010.1.1.1', '1.2.3.256', '1.2.3', '1.2.3.4.5',
    '1.2.3.4/33', '1.2.3.4/', '1.2.3.4/255.255.0.0', 'localhost', '1.2.3.4/007', '255.255.255.255/1'];
  const ifaces = ['eth0', 'eth+', '+', 'veth0123456789a', 'veth0123456789ab', '-x', 'lo'];
  const protos = ['tcp', 'udp', 'icmp', 'TCP', '6', '17', 'all', '0', 'gre', '256', 'nosuch'];
  const portsOf = ['22', '0', '65535', '65536', '1:1024', '1024:1', ':80', '80:', 'ssh', '00022', '123456'];
  const targets = ['ACCEPT', 'DROP', 'RETURN', 'mychain', 'LOG', 'REJECT', 'MASQUERADE', '-x'];
  const lines: string[] = [];
  for (let i = 0; i < 6000; i++) {
    const proto = pick(protos);
    const m = pick(['tcp', 'udp', 'TCP', 'icmp']);
    const parts = [
      `-A ${pick(['INPUT', 'FORWARD', 'x-chain', '!x', '-x'])}`,
      maybe(50, () => `${maybe(20, () => '! ')}-s ${pick(addrs)}`),
      maybe(40, () => `${maybe(20, () => '! ')}-d ${pick(addrs)}`),
      maybe(15, () => `${maybe(20, () => '! ')}-i ${pick(ifaces)}`),
      maybe(15, () => `${maybe(20, () => '! ')}-o ${pick(ifaces)}`),
      maybe(60, () => `${maybe(10, () => '! ')}-p ${proto}`),
      maybe(50, () => `${maybe(3, () => '! ')}-m ${m}${maybe(40, () => ` ${maybe(20, () => '! ')}--sport ${pick(portsOf)}`)}${maybe(60, () => ` ${maybe(20, () => '! ')}--dport ${pick(portsOf)}`)}`),
      maybe(90, () => `${maybe(3, () => '! ')}-${pick(['j', 'j', 'j', 'g'])} ${pick(targets)}`),
    ].filter(Boolean);
    if (rnd(10) === 0) parts.splice(1 + rnd(parts.length - 1), 0, pick(['-f', '-m comment --comment x', '-c 1 2', '-s 1.1.1.1', '-j DROP']));
    let line = parts.join(' ');
    if (rnd(40) === 0) line = line.replace(' ', pick(['  ', '\t', ' "', ' \\']));
    if (rnd(40) === 0) line += ' ';
    lines.push(line);
  }
  const taken = compare(t, lines);
  const accepted = lines.filter((l) => !generic(l).startsWith('error') && !generic(l).startsWith('not')).length;
  t.ok(taken > 300, `the fast path took ${taken} of the ${accepted} lines the generic parser accepts (of ${lines.length})`);
});

t.test('a restore through the fast path saves as the input', async (t) => {
  const text = ['*filter', ':INPUT DROP [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':svc - [0:0]',
    '-A INPUT -s 10.0.0.1/32 -j DROP', '-A INPUT ! -s 10.0.0.0/8 -d 192.0.2.1/32 -i eth0 -p tcp -m tcp ! --sport 1:1023 --dport 80 -j svc',
    '-A INPUT -i lo -j ACCEPT', '-A INPUT -p udp -m udp --dport 53 -g svc', '-A INPUT -p icmp', '-A svc -j RETURN', 'COMMIT', ''].join('\n');
  const tables = parseRestore(text, { file: 'x', db, counters: false }).tables;
  t.equal(saveTable(tables[0]!, { counters: false, db }).split('\n').filter((l) => l.startsWith('-A')).join('\n'),
    text.split('\n').filter((l) => l.startsWith('-A')).join('\n'));
  t.same(tables[0]!.chains[0]!.rules[0]!.src, { file: 'x', line: 6 }, 'the rule knows its line');
});

t.test('parseIpv4 (a scanner) reads exactly the dotted quads of its regular expression', async (t) => {
  const reference = (text: string): number | undefined => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
    if (!m) return undefined;
    const p = m.slice(1).map(Number);
    return p.some((x) => x > 255) ? undefined : ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
  };
  const cases = ['0.0.0.0', '255.255.255.255', '1.2.3.4', '010.001.000.009', '256.1.1.1', '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '1.2.3.4 ',
    '1.2.3.a', '1234.1.1.1', '1.2.3.4/8', '', '1.2.3.-4', '+1.2.3.4', '1.2.3.4\n', '٣.1.1.1', '1.2.3.0000'];
  let seed = 7;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let i = 0; i < 3000; i++) cases.push(Array.from({ length: 1 + rnd(16) }, () => '0123456789..9x'[rnd(14)]).join(''));
  // quads of 1-4 digit groups (some over 255), three to five of them
  for (let i = 0; i < 3000; i++) cases.push(Array.from({ length: 3 + rnd(3) }, () => String(rnd(400)).padStart(1 + rnd(4), '0')).join('.'));
  const { parseIpv4 } = await import('../xlate/addr');
  const wrong = cases.filter((c) => parseIpv4(c) !== reference(c));
  t.same(wrong, [], 'no input read differently');
  t.ok(cases.filter((c) => reference(c) !== undefined).length > 20, 'the generated inputs include valid quads');
});
