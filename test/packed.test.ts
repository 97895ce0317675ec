/**
 * Packed rules (xlate/packed): the scanner must build exactly the rule the
 * generic parser builds, and take no line the generic parser refuses or
 * warns about: checked on every `-A` line of the fixtures and the
 * conformance dumps, and on generated lines full of near misses. Then what
 * packed rules are as IR rules (getters, JSON, copies) and their stored
 * form (xlate/stored) through a round trip.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { splitArgs } from '../grammar/restore-lexer';
import { chainLength, PackedRule, packedRows, plainRule, rowTargets, RuleBlock, scanPacked, withCounters, ZERO_COUNTERS } from '../xlate/packed';
import { tableFacts } from '../xlate/facts';
import { validateTable } from '../xlate/validate';
import { parseRuleArgs } from '../xlate/rule-parse';
import { parseRestore } from '../xlate/restore';
import { saveTable } from '../xlate/save';
import { decodeTable, encodeTable, storedStateKeys } from '../xlate/stored';
import type { Rule, Table } from '../xlate/ir';
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

/** The packed rule of one line (in a block of its own), or undefined when the scanner leaves it. */
function packed(line: string): { chain: string; rule: PackedRule } | undefined {
  const block = new RuleBlock('f', 1);
  const chain = scanPacked(line, 0, line.length, block, db, 1);
  if (chain === undefined) { if (block.count !== 0) throw new Error('a refused line left a row'); return undefined; }
  return { chain, rule: new PackedRule(block, 0) };
}

/** Compare on `lines` (`wanted`: what the generic parser makes of them, when known); returns how many the scanner took. */
function compare(t: Test, lines: string[], wanted?: string[]): number {
  let taken = 0;
  for (const [k, line] of lines.entries()) {
    const p = packed(line);
    if (!p) continue;
    taken++;
    const want = wanted?.[k] ?? generic(line);
    // the key order too: the stored form of other rules is this object's JSON
    const found = JSON.stringify({ chain: p.chain, rule: p.rule });
    if (found !== want) t.fail(`packed rule differs on ${JSON.stringify(line)}`, { found, wanted: want });
    // the objects the getters build are the same as the JSON says
    if (JSON.stringify({ chain: p.chain, rule: { ip: p.rule.ip, matches: p.rule.matches, verdict: p.rule.verdict, counters: p.rule.counters, src: p.rule.src } }) !== want) {
      t.fail(`packed rule's getters differ on ${JSON.stringify(line)}`);
    }
  }
  return taken;
}

t.test('every -A line of the fixtures and dumps', async (t) => {
  const files = fs.readdirSync(path.join(REPO, 'fixtures')).filter((f) => f.endsWith('.rules')).map((f) => path.join(REPO, 'fixtures', f));
  const dumps = path.join(SHARED, 'iptables', 'dumps');
  if (fs.existsSync(dumps)) files.push(...fs.readdirSync(dumps).map((f) => path.join(dumps, f)));
  const lines = files.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n')).filter((l) => l.startsWith('-A '));
  const taken = compare(t, lines);
  t.ok(taken > 20, `the scanner took ${taken} of ${lines.length} lines`);
});

t.test('generated lines, valid and near misses', async (t) => {
  // a small deterministic generator (xorshift) over the packed form's parts and their near misses
  let seed = 0x2545f491;
  const rnd = (n: number): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
  const pick = <T>(xs: T[]): T => xs[rnd(xs.length)]!;
  const maybe = (p: number, s: () => string): string => (rnd(100) < p ? s() : '');
  const addrs = ['10.0.0.1', '10.0.0.1/32', '10.1.2.0/24', '0.0.0.0/0', '192.168.1.1/16', '010.1.1.1', '1.2.3.256', '1.2.3', '1.2.3.4.5',
    '1.2.3.4/33', '1.2.3.4/', '1.2.3.4/255.255.0.0', 'localhost', '1.2.3.4/007', '255.255.255.255/1', '1.2.3.4/8x', '1.2.3.4/0x20']; // no name that needs DNS (the resolver's wait)
  const ifaces = ['eth0', 'eth+', '+', 'veth0123456789a', 'veth0123456789ab', '-x', 'lo', 'e!x', 'é'];
  const protos = ['tcp', 'udp', 'icmp', 'TCP', '6', '17', 'all', '0', 'gre', '256', 'nosuch', 'udplite'];
  const portsOf = ['22', '0', '65535', '65536', '1:1024', '1024:1', ':80', '80:', 'ssh', '00022', '123456', '22x', '1:2:3'];
  const targets = ['ACCEPT', 'DROP', 'RETURN', 'mychain', 'LOG', 'REJECT', 'MASQUERADE', '-x', 'a"b'];
  const lines: string[] = [];
  for (let i = 0; i < 8000; i++) {
    const proto = pick(protos);
    const m = pick(['tcp', 'udp', 'TCP', 'icmp', 'tcpx', 'udp ']);
    const parts = [
      `-A ${pick(['INPUT', 'FORWARD', 'x-chain', '!x', '-x', 'a\\b'])}`,
      maybe(50, () => `${maybe(20, () => '! ')}-s ${pick(addrs)}`),
      maybe(40, () => `${maybe(20, () => '! ')}-d ${pick(addrs)}`),
      maybe(15, () => `${maybe(20, () => '! ')}-i ${pick(ifaces)}`),
      maybe(15, () => `${maybe(20, () => '! ')}-o ${pick(ifaces)}`),
      maybe(60, () => `${maybe(10, () => '! ')}-p ${proto}`),
      maybe(50, () => `${maybe(3, () => '! ')}-m ${m}${maybe(40, () => ` ${maybe(20, () => '! ')}--sport ${pick(portsOf)}`)}${maybe(60, () => ` ${maybe(20, () => '! ')}--dport ${pick(portsOf)}`)}`),
      maybe(90, () => `${maybe(3, () => '! ')}-${pick(['j', 'j', 'j', 'g'])} ${pick(targets)}`),
    ].filter(Boolean);
    if (rnd(10) === 0) parts.splice(1 + rnd(parts.length - 1), 0, pick(['-f', '-m comment --comment x', '-c 1 2', '-s 1.1.1.1', '-j DROP', '--dport 1', '!']));
    if (rnd(20) === 0) parts.reverse();
    let line = parts.join(' ');
    if (rnd(40) === 0) line = line.replace(' ', pick(['  ', '\t', ' "', ' \\']));
    if (rnd(40) === 0) line += pick([' ', '\t', ' !']);
    lines.push(line);
  }
  const wanted = lines.map(generic);
  const taken = compare(t, lines, wanted);
  const accepted = wanted.filter((w) => !w.startsWith('error') && !w.startsWith('not')).length;
  t.ok(taken > 300, `the scanner took ${taken} of the ${accepted} lines the generic parser accepts (of ${lines.length})`);
});

t.test('a line within a larger text, ending in CR, and a block that grows', async (t) => {
  const block = new RuleBlock('f', 1);
  const text = 'x\n-A INPUT -s 10.0.0.1/32 -j DROP\r\n-A INPUT -d 10.0.0.2 -p udp -m udp --dport 53 -j ACCEPT\n';
  const a = text.indexOf('-A'), aEnd = text.indexOf('\n', a);
  t.equal(scanPacked(text, a, aEnd, block, db, 2), 'INPUT');
  const b = aEnd + 1, bEnd = text.indexOf('\n', b);
  t.equal(scanPacked(text, b, bEnd, block, db, 3), 'INPUT');
  t.equal(block.count, 2, 'two rows, past the first capacity');
  t.equal(generic('-A INPUT -s 10.0.0.1/32 -j DROP').replace('"line":1', '"line":2'), JSON.stringify({ chain: 'INPUT', rule: new PackedRule(block, 0) }));
  t.equal(generic('-A INPUT -d 10.0.0.2 -p udp -m udp --dport 53 -j ACCEPT').replace('"line":1', '"line":3'), JSON.stringify({ chain: 'INPUT', rule: new PackedRule(block, 1) }));
  t.equal(scanPacked('-A INPUT -s 10.0.0.1/32 -j DROP x', 0, 30, block, db, 4), 'INPUT', 'only the range given is read');
  t.equal(scanPacked('-A INPUT -s 10.0.0.1/32 -j DROP x', 0, 32, block, db, 4), undefined, 'a range with more is refused');
});

t.test('packed rules as IR rules', async (t) => {
  const p = packed('-A INPUT -s 10.1.2.3/24 -p tcp -m tcp --dport 22 -j svc')!;
  const r = p.rule;
  t.equal(r.ip, r.ip, 'ip is built once and kept');
  t.same(r.verdict, { kind: 'jump', chain: 'svc' });
  t.equal(r.verdict, r.block.verdictOf(0), 'one verdict object for the jumps to a chain');
  t.ok(Object.isFrozen(r.verdict), 'shared verdicts are frozen');
  t.equal(r.counters, ZERO_COUNTERS);
  t.throws(() => { (r.counters as { packets: number }).packets = 1; }, 'zero counters are frozen: never changed in place');
  const c = withCounters(r, { packets: 3, bytes: 4 });
  t.ok(c instanceof PackedRule, 'withCounters keeps a packed rule packed');
  t.same(c.counters, { packets: 3, bytes: 4 });
  t.equal(r.counters, ZERO_COUNTERS, 'the original keeps its counters');
  const plain = plainRule(r);
  t.notOk(plain instanceof PackedRule);
  t.equal(JSON.stringify(plain), JSON.stringify(r), 'plainRule has the same fields');
  t.same({ ...plain, verdict: { kind: 'drop' } }.ip, r.ip, 'a copy to change');
  r.src = { file: 'g', line: 9 };
  t.same(r.src, { file: 'g', line: 9 }, 'src can be set');
});

/** Tables from restores: all packed, mixed, with user chains, jumps and gotos, and rules after edits. */
function restore(text: string): Table {
  return parseRestore(text, { file: 'x', db, counters: false }).tables[0]!;
}

const MIXED = ['*filter', ':INPUT DROP [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':svc - [0:0]',
  '-A INPUT -s 10.0.0.1/32 -j DROP', '-A INPUT ! -s 10.0.0.0/8 -d 192.0.2.1/32 -i eth0 -p tcp -m tcp ! --sport 1:1023 --dport 80 -j svc',
  '-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT', '-A INPUT -i lo+ -j ACCEPT', '-A INPUT -p udp -m udp --dport 53 -g svc', '-A INPUT -p icmp',
  '-A OUTPUT -o eth1 -p tcp -m tcp --sport 22', '-A svc -j RETURN', '-A svc -s 1.2.3.4/32 -m comment --comment "a b" -j ACCEPT', 'COMMIT', ''].join('\n');

t.test('a restore of plain lines packs them and saves as the input', async (t) => {
  const table = restore(MIXED);
  const rules = table.chains.flatMap((c) => c.rules);
  t.equal(rules.filter((r) => r instanceof PackedRule).length, 7, 'the plain lines are packed, the others are not');
  t.equal(saveTable(table, { counters: false, db }).split('\n').filter((l) => l.startsWith('-A')).join('\n'),
    MIXED.split('\n').filter((l) => l.startsWith('-A')).join('\n'));
  t.same(table.chains[0]!.rules[0]!.src, { file: 'x', line: 6 }, 'the rule knows its line');
  t.same(table.chains[0]!.rules[2]!.src, { file: 'x', line: 8 }, 'and so does a rule the generic parser read in the same block');
});

/** The table as JSON, counters and source positions left out (what the store keeps). */
const shape = (tab: Table): string => JSON.stringify({ ...tab, chains: tab.chains.map((c) => ({ name: c.name, policy: c.policy, rules: c.rules.map((r: Rule) => ({ ip: r.ip, matches: r.matches, verdict: r.verdict })) })) });

t.test('the stored form: a round trip, state keys, blocks copied down, version 1', async (t) => {
  const table = restore(MIXED);
  const bytes = Buffer.concat(encodeTable(table, ['k1', 'k2']));
  t.equal(bytes.toString('latin1', 0, 4), 'BPT2');
  const back = decodeTable(bytes, 4);
  t.equal(shape(back.table), shape(table), 'the same table comes back');
  t.same(back.stateKeys, ['k1', 'k2']);
  t.same(storedStateKeys(bytes), ['k1', 'k2'], 'state keys alone');
  t.equal(back.table.chains[0]!.rules.filter((r) => r instanceof PackedRule).length, 5, 'packed rules come back packed');
  t.ok(back.table.chains.every((c) => c.rules.every((r) => r.counters.packets === 0 && r.counters.bytes === 0)), 'with zero counters');
  // one range for a whole block of the same chain
  const big = restore(['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]',
    ...Array.from({ length: 3000 }, (_, i) => `-A INPUT -s 10.0.${i >> 8}.${i & 255}/32 -j DROP`), 'COMMIT', ''].join('\n'));
  const bigBytes = Buffer.concat(encodeTable(big));
  t.ok(bigBytes.length < 3000 * 10, `3000 rules stored in ${bigBytes.length} bytes: the columns a blocklist leaves zero are left out`);
  t.equal(shape(decodeTable(bigBytes, 4).table), shape(big));
  // rules deleted and reordered: the block is copied down to the rows still used, in the table's order
  const edited: Table = { ...big, chains: big.chains.map((c) => ({ ...c, rules: c.name === 'INPUT' ? [...c.rules.slice(2000, 2100), ...c.rules.slice(0, 10)].reverse() : c.rules })) };
  edited.chains[0]!.rules.push(...table.chains[3]!.rules, ...table.chains[0]!.rules);
  const e2 = Buffer.concat(encodeTable(edited));
  t.ok(e2.length < bigBytes.length / 4, 'only the rows used are stored');
  t.equal(shape(decodeTable(e2, 4).table), shape(edited));
  // what an earlier release stored: the JSON of the table
  const v1 = Buffer.from(JSON.stringify({ version: 1, table: JSON.parse(JSON.stringify(table)), stateKeys: ['z'] }));
  const old = decodeTable(v1, 4);
  t.equal(shape(old.table), shape(table), 'version 1 is read');
  t.same(storedStateKeys(v1), ['z']);
  t.throws(() => decodeTable(bytes.subarray(0, bytes.length - 1), 4), 'a cut-short store is refused');
});

t.test('packed chains: rows without rule objects until the rules are read', async (t) => {
  const lines = Array.from({ length: 40 }, (_, i) => `-A INPUT -s 10.9.0.${i}/32 -j ${i % 3 ? 'DROP' : 'svc'}`);
  const text = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':svc - [0:0]', ...lines, '-A svc -j RETURN', 'COMMIT', ''].join('\n');
  const table = restore(text);
  const input = table.chains[0]!;
  const rows = packedRows(input)!;
  t.ok(rows, 'a chain of consecutive plain lines is packed');
  t.same([rows.from, rows.to], [0, 40]);
  t.equal(chainLength(input), 40, 'its length without its rules');
  validateTable(table);
  t.same([...rowTargets(rows, new Set())], ['svc'], 'its targets come from its rows');
  const facts = tableFacts(table);
  t.same([facts.ifaces, facts.events], [false, false]);
  t.equal(packedRows(input), rows, 'validation and the facts read its rows: it is still packed');
  // the stored form keeps it one range, read back as a packed chain
  const back = decodeTable(Buffer.concat(encodeTable(table)), 4).table;
  t.ok(packedRows(back.chains[0]!), 'read back packed');
  t.equal(shape(back), shape(table), 'the same table (reading the rules builds them)');
  t.notOk(packedRows(back.chains[0]!), 'a chain whose rules were read is a plain chain');
  t.equal(back.chains[0]!.rules.length, 40);
  // counters come with the rules when they are built
  const again = decodeTable(Buffer.concat(encodeTable(table)), 4).table;
  const values = Buffer.alloc(16 * 50);
  values.writeUInt32LE(7, 16 * 3); values.writeUInt32LE(1, 16 * 3 + 4); values.writeUInt32LE(99, 16 * 3 + 8);
  packedRows(again.chains[0]!)!.counters = { values, base: 2 };
  const c = again.chains[0]!.rules;
  t.same(c[1]!.counters, { packets: 7 + 4294967296, bytes: 99 }, 'slot base + 1');
  t.equal(c[0]!.counters, ZERO_COUNTERS);
  // a spread reads the rules: the copy is a plain chain with the same rules
  const t2 = restore(text);
  const copy = { ...t2.chains[0]! };
  t.equal(copy.rules.length, 40);
  t.notOk(packedRows(t2.chains[0]!), 'the original was built by the spread');
  // a plain line after packed ones in the same chain: the chain's rules are built, then the line appended
  const drops = lines.map((l) => l.replace(/ -j svc$/, ' -j DROP'));
  const mixed = restore(['*filter', ':INPUT ACCEPT [0:0]', ...drops.slice(0, 5), '-A INPUT -m conntrack --ctstate NEW', ...drops.slice(5, 8), 'COMMIT', ''].join('\n'));
  t.notOk(packedRows(mixed.chains[0]!));
  t.equal(mixed.chains[0]!.rules.length, 9);
  t.equal(mixed.chains[0]!.rules.filter((r) => r instanceof PackedRule).length, 8);
  // a bad target in a packed chain names its line
  t.throws(() => restore(['*filter', ':INPUT ACCEPT [0:0]', ...lines.slice(1, 3), '-A INPUT -s 1.2.3.4/32 -j nowhere', 'COMMIT', ''].join('\n')),
    { message: /nowhere/, where: { line: 5 } }, 'the line of the first rule that names it');
});

