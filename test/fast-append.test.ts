/**
 * `iptables -A` in place (compat/fast-append.ts): a rule of the shape of the
 * exact-match run that ends its chain extends that run without a recompile;
 * every other append takes the full path. Each step runs beside
 * iptables-legacy: the same listing after every command, the same packets
 * delivered and dropped, the same counters in `iptables-save -c`, before and
 * after a full-path command rebuilds the table from the appended rules. The
 * debug log says which appends went in place.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { nsExec } from '../compat/lab';
import { ipPacket, TCP, tcpPacket, udpPacket } from '../compat/probes';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { TREE_MAX } from '../cgen/exact';
import { BIN, prepareState, requireKernel } from './helpers/env';
import { liveVerdicts, throwawayNamespace } from './helpers/live';

const R = '10.0.1.1';
/** rules in the runs appended to: more keys than a binary search takes, so each run is a hash lookup (at most 254: one /24) */
const RUN = TREE_MAX + 72;
const IN_PLACE = 'rule appended in place';

function header(policy = 'ACCEPT'): string[] {
  return ['*filter', `:INPUT ${policy} [0:0]`, ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
}

/**
 * Both engines' `iptables-save -c`, comments (version, time) left out, and
 * the policy counters: iptables-legacy zeroes those of a chain it changes,
 * where iptables-nft and bpftables keep them (checked apart below).
 */
function saved(pair: DiffPair): { legacy: string; ours: string } {
  const strip = (s: string): string => s.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/^(:\S+ \S+) \[\d+:\d+\]$/, '$1')).join('\n');
  return {
    legacy: strip(nsExec(pair.legacy.router, 'iptables-legacy-save', ['-c']).stdout),
    ours: strip(nsExec(pair.ours.router, path.join(BIN, 'iptables-save'), ['-c']).stdout),
  };
}

/** Run `args` with both engines (same status and listing); returns whether ours appended in place. */
function step(t: Test, pair: DiffPair, args: string[], env: NodeJS.ProcessEnv = {}): boolean {
  const l = nsExec(pair.legacy.router, 'iptables-legacy', args);
  const o = nsExec(pair.ours.router, path.join(BIN, 'iptables'), args, undefined, { ...process.env, ...env, BPFTABLES_LOG: 'debug' });
  t.equal(o.status, l.status, `iptables ${args.join(' ')}: exit status ${l.status}`);
  const s = saved(pair);
  t.equal(s.ours, s.legacy, `iptables ${args.join(' ')}: the same ruleset and counters afterwards`);
  return o.stderr.includes(IN_PLACE);
}

const syn = (src: string, dport = 80): Buffer => tcpPacket(src, R, { sport: 40000, dport, flags: TCP.SYN });
const probe = (name: string, src: string, expect: boolean, dport = 80): ProbeSpec => ({ name, where: 'input', packet: syn(src, dport), expect });

t.test('appending to a blocklist extends its run in place, as iptables-legacy appends', async (t) => {
  if (!requireKernel(t, ['iptables-legacy'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  // a run of exact sources that ends INPUT, alternately dropped and accepted
  const rules = [...header(), ...Array.from({ length: RUN }, (_, i) => `-A INPUT -s 198.18.0.${i + 1}/32 -j ${i % 2 ? 'ACCEPT' : 'DROP'}`), 'COMMIT', ''];
  pair.load(rules.join('\n'));
  t.ok(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.1', '-j', 'DROP']), 'a new source: in place');
  t.ok(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.2/32', '-j', 'ACCEPT']), 'a new source accepted: in place');
  t.ok(step(t, pair, ['-A', 'INPUT', '-s', '198.18.0.2', '-j', 'DROP']), 'a source an earlier rule accepts: in place (and never matched)');
  t.ok(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.1', '-j', 'DROP']), 'the same rule twice: in place');
  // (before any full-path command, which would rebuild the maps from the listing)
  const probes = [
    probe('appended drop', '198.18.1.1', false), probe('appended accept', '198.18.1.2', true),
    probe('earlier accept wins over the appended drop', '198.18.0.2', true), probe('a listed drop', '198.18.0.1', false),
    probe('no rule', '198.18.2.1', true),
  ];
  checkOutcomes(t, pair.probe(probes));
  t.notOk(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.3', '-p', 'tcp', '-j', 'DROP']), 'another shape: the full path');
  checkOutcomes(t, pair.probe([probe('after the run: the full-path rule', '198.18.1.3', false)]));
  const s = saved(pair);
  t.equal(s.ours, s.legacy, 'counters of the appended rules as iptables-legacy counts them');
  t.match(s.ours, /\[1:40\] -A INPUT -s 198\.18\.1\.1\/32 -j DROP\n\[1:40\] -A INPUT -s 198\.18\.1\.2\/32 -j ACCEPT\n\[0:0\] -A INPUT -s 198\.18\.0\.2\/32 -j DROP\n/, 'the appended rules counted their packets (not the one an earlier rule shadows)');
  // the chain no longer ends in the run: appends take the full path, which rebuilds from the appended rules
  t.notOk(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.4', '-j', 'DROP']), 'after a rule of another shape: the full path');
  t.notOk(step(t, pair, ['-I', 'INPUT', '-s', '198.18.3.1', '-j', 'DROP']), '-I: the full path');
  t.notOk(step(t, pair, ['-D', 'INPUT', '-s', '198.18.1.3', '-p', 'tcp', '-j', 'DROP']), '-D of the rule of another shape');
  t.ok(step(t, pair, ['-A', 'INPUT', '-s', '198.18.1.5', '-j', 'DROP']), 'the chain ends in the run again: in place');
  checkOutcomes(t, pair.probe([...probes.slice(0, 4), probe('appended after the rebuild', '198.18.1.5', false), probe('inserted', '198.18.3.1', false)]));
  const after = saved(pair);
  t.equal(after.ours, after.legacy, 'counters kept through the rebuild and counted on');
  const policy = /^:INPUT ACCEPT \[(\d+):/m.exec(nsExec(pair.ours.router, path.join(BIN, 'iptables-save'), ['-c']).stdout)?.[1];
  t.equal(policy, '1', 'the policy counter (the first round\'s unmatched probe) kept through every change, as iptables-nft keeps it');
});

t.test('appends go in place until the room kept for them is used up', async (t) => {
  if (!requireKernel(t, ['iptables-legacy'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  const env = { BPFTABLES_TEST_APPEND_ROOM: '2' };
  const rules = [...header(), ...Array.from({ length: RUN }, (_, i) => `-A INPUT -s 198.18.0.${i + 1}/32 -j DROP`), 'COMMIT', ''].join('\n');
  nsExec(pair.legacy.router, 'iptables-legacy-restore', [], rules);
  nsExec(pair.ours.router, path.join(BIN, 'iptables-restore'), [], rules, { ...process.env, ...env });
  const append = (i: number): boolean => step(t, pair, ['-A', 'INPUT', '-s', `198.18.1.${i}`, '-j', 'DROP'], env);
  t.same([append(1), append(2)], [true, true], 'two in place');
  checkOutcomes(t, pair.probe([1, 2].map((i) => probe(`appended ${i} in place`, `198.18.1.${i}`, false))));
  t.same([append(3), append(4)], [false, true], 'the third rebuilds the table (with room again), the fourth in place');
  checkOutcomes(t, pair.probe([1, 2, 3, 4].map((i) => probe(`appended ${i}`, `198.18.1.${i}`, false))));
  const s = saved(pair);
  t.equal(s.ours, s.legacy, 'every appended rule counted its packet');
});

t.test('a service list with jumps: in place for a known target only, never a second rule of one key', async (t) => {
  if (!requireKernel(t, ['iptables-legacy'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  const rules = [...header('DROP'), ':SVC-A - [0:0]', ':SVC-B - [0:0]', ':SVC-C - [0:0]',
    ...Array.from({ length: RUN }, (_, i) => `-A INPUT -d ${R}/32 -p tcp -m tcp --dport ${7000 + i} -j SVC-${i % 2 ? 'A' : 'B'}`),
    '-A SVC-A -j ACCEPT', '-A SVC-B -s 10.0.1.2/32 -j ACCEPT', '-A SVC-B -j RETURN', '-A SVC-C -j ACCEPT', 'COMMIT', ''];
  pair.load(rules.join('\n'));
  t.ok(step(t, pair, ['-A', 'INPUT', '-d', R, '-p', 'tcp', '--dport', '8000', '-j', 'SVC-A']), 'a new service to a chain the run calls: in place');
  checkOutcomes(t, pair.probe([{ name: 'appended service, in place', where: 'input', packet: syn('10.0.1.9', 8000), expect: true }]));
  t.notOk(step(t, pair, ['-A', 'INPUT', '-d', R, '-p', 'tcp', '--dport', '8001', '-j', 'SVC-C']), 'to a chain the run does not call: the full path');
  t.notOk(step(t, pair, ['-A', 'INPUT', '-d', R, '-p', 'tcp', '--dport', '7000', '-j', 'SVC-A']), 'a key the run has (the jump returns to it): the full path');
  const C = '10.0.1.2';
  checkOutcomes(t, pair.probe([
    { name: 'appended service', where: 'input', packet: syn(C, 8000), expect: true },
    { name: 'service to the new chain', where: 'input', packet: syn(C, 8001), expect: true },
    { name: 'SVC-B returns, then the appended SVC-A rule accepts', where: 'input', packet: syn('10.0.1.9', 7000), expect: true },
    { name: 'SVC-B returns', where: 'input', packet: syn('10.0.1.9', 7002), expect: false },
  ]));
  const s = saved(pair);
  t.equal(s.ours, s.legacy, 'the same counters');
});

t.test('an in-place append killed at any point is listed exactly when it is in force', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'F');
  const run = (cmd: string, args: string[], input?: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof nsExec> =>
    nsExec(ns, path.join(BIN, cmd), args, input, { ...process.env, ...env });
  // a udp run: its appends also add the address part (the drop of unreadable headers)
  const rules = [...header(), ...Array.from({ length: RUN }, (_, i) => `-A INPUT -s 198.18.0.${i + 1}/32 -p udp -m udp --dport 53 -j DROP`), 'COMMIT', ''].join('\n');
  t.equal(run('iptables-restore', [], rules).status, 0, 'restored');
  const append = (addr: string): string[] => ['-A', 'INPUT', '-s', addr, '-p', 'udp', '-m', 'udp', '--dport', '53', '-j', 'DROP'];
  const traced = run('iptables', append('198.18.2.1'), undefined, { BPFTABLES_TEST_CRASH_TRACE: '1', BPFTABLES_LOG: 'debug' }).stderr;
  t.match(traced, IN_PLACE, 'the traced append went in place');
  const points = (traced.match(/^crash point: /gm) ?? []).length;
  t.ok(points >= 4, `${points} crash points along an in-place append`);
  const probes = (addr: string): { chain: 'INPUT'; packet: Buffer }[] => [
    { chain: 'INPUT', packet: udpPacket(addr, R, 5000, 53) },
    { chain: 'INPUT', packet: ipPacket({ src: addr, dst: R, proto: 17, payload: Buffer.alloc(4) }) },
  ];
  let rolledForward = 0;
  for (let k = 1; k <= points; k++) {
    const addr = `198.18.1.${k}`;
    const r = run('iptables', append(addr), undefined, { BPFTABLES_TEST_CRASH_AT: String(k) });
    t.equal(r.signal, 'SIGKILL', `killed at crash point ${k}`);
    const listed = run('iptables-save', []).stdout.includes(`-A INPUT -s ${addr}/32 -p udp -m udp --dport 53 -j DROP`);
    const [full, short] = liveVerdicts(ns, probes(addr));
    t.equal(full === 'D', listed, `point ${k}: ${addr} ${listed ? 'listed' : 'not listed'}, its datagram ${full === 'D' ? 'dropped' : 'accepted'}`);
    if (listed) t.equal(short, 'D', `point ${k}: its unreadable header is dropped too`);
    if (listed && !/position moved/.test(traced.split('\n').filter((l) => l.startsWith('crash point: '))[k - 1] ?? '')) rolledForward++;
    // the next append (of another address) goes on from there
    const next = run('iptables', append(`198.18.3.${k}`), undefined, { BPFTABLES_LOG: 'debug' });
    t.match(next.stderr, IN_PLACE, `point ${k}: the next append goes in place`);
    const saved = run('iptables-save', []).stdout;
    t.ok(saved.includes(`-s 198.18.3.${k}/32`), `point ${k}: the next append is listed`);
    t.equal(liveVerdicts(ns, probes(`198.18.3.${k}`))[0], 'D', `point ${k}: and in force`);
    t.equal(saved.split(`-s ${addr}/32 `).length - 1, listed ? 1 : 0, `point ${k}: the killed append listed once or not at all`);
  }
  t.ok(rolledForward >= 1, `${rolledForward} killed appends were in force before they moved the position, and are listed`);
  // a full-path command keeps what is listed
  const before = run('iptables-save', []).stdout.split('\n').filter((l) => l.startsWith('-A'));
  t.equal(run('iptables', ['-I', 'INPUT', '-s', '198.18.9.9', '-j', 'DROP']).status, 0, 'a full-path command');
  const after = run('iptables-save', []).stdout.split('\n').filter((l) => l.startsWith('-A'));
  t.same(after.slice(1), before, 'the listed rules kept, in order, behind the inserted one');
});
