/**
 * ipset and -m set through the kernel, beside the kernel's ipset and
 * iptables-legacy: the same sets made with both ipset commands, the same
 * rules, the same probes; then membership changes (add, del, an element's
 * timeout running out, swap) without touching the rules, probed again.
 * Also ipset's command line itself: output and exit codes beside ipset's.
 */
import path from 'node:path';
import t from 'tap';
import { nsExec, sleep } from '../compat/lab';
import { icmpPacket, ip6Packet, tcpPacket, udpDatagram6, udpPacket } from '../compat/probes';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

const C = '10.0.1.2', R = '10.0.1.1', S = '10.0.2.2';

/** Run the same ipset command in both routers: the kernel's ipset and ours. */
function ipsetBoth(pair: DiffPair, args: string[]): { legacy: ReturnType<typeof nsExec>; ours: ReturnType<typeof nsExec> } {
  return { legacy: nsExec(pair.legacy.router, 'ipset', args), ours: nsExec(pair.ours.router, path.join(BIN, 'ipset'), args) };
}

const SETUP = [
  'create blk hash:ip timeout 600', 'add blk 10.0.1.7',
  'create nets hash:net', 'add nets 10.0.2.0/24', 'add nets 192.168.0.0-192.168.0.10',
  'create svc hash:ip,port', 'add svc 10.0.1.1,tcp:22', 'add svc 10.0.1.1,udp:53', 'add svc 10.0.1.1,icmp:ping',
  'create np hash:net,port', 'add np 10.0.2.0/24,tcp:80-81',
  'create blk2 hash:ip', 'add blk2 10.0.1.2',
  // last, so that the first probes come well within its 2 seconds (each command here takes a while under tap)
  'add blk 10.0.1.2 timeout 2',
];

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SVC - [0:0]
-A INPUT -p udp -m udp --dport 9000 -m set --match-set blk src -j DROP
-A INPUT -p udp -m udp --dport 9001 -m set ! --match-set blk src -j DROP
-A INPUT -m set --match-set svc dst,dst -j SVC
-A INPUT -p udp -m udp --dport 9002 -j DROP
-A SVC -p tcp -j DROP
-A FORWARD -m set --match-set nets dst -p udp -m udp --dport 9003 -j DROP
-A FORWARD -m set --match-set np dst,dst -j DROP
-A FORWARD -m set --match-set svc src,dst -j DROP
COMMIT
`;

const probes = (tag: string): ProbeSpec[] => [
  { name: `${tag}: udp 9000 from a blocked address`, where: 'input', packet: udpPacket(C, R, 5000, 9000) },
  { name: `${tag}: udp 9001, inverted`, where: 'input', packet: udpPacket(C, R, 5000, 9001) },
  { name: `${tag}: tcp 22 to a listed service`, where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 22, flags: 2 }) },
  { name: `${tag}: udp 53 to a listed service, then 9002`, where: 'input', packet: udpPacket(C, R, 5000, 53) },
  { name: `${tag}: tcp 23, not listed`, where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 23, flags: 2 }) },
  { name: `${tag}: ping (icmp 8/0 as the port)`, where: 'input', packet: icmpPacket(C, R, 8, 0) },
  { name: `${tag}: forwarded udp 9003 into a listed network`, where: 'forward', packet: udpPacket(C, S, 5000, 9003) },
  { name: `${tag}: forwarded tcp 80 into net,port`, where: 'forward', packet: tcpPacket(C, S, { sport: 1, dport: 80, flags: 2 }) },
  { name: `${tag}: forwarded tcp 81 into net,port (range)`, where: 'forward', packet: tcpPacket(C, S, { sport: 1, dport: 81, flags: 2 }) },
  { name: `${tag}: forwarded tcp 82`, where: 'forward', packet: tcpPacket(C, S, { sport: 1, dport: 82, flags: 2 }) },
];

t.test('-m set filters like iptables-legacy with the kernel\'s ipset, and follows set changes', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore', 'ipset'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  for (const line of SETUP) {
    const r = ipsetBoth(pair, line.split(' '));
    t.equal(r.ours.status, r.legacy.status, `ipset ${line}: exit ${r.legacy.status}`);
  }
  const l = pair.load(RULES);
  t.equal(l.oursStatus, 0, `our restore succeeded ${l.ours}`);
  checkOutcomes(t, pair.probe(probes('initial')));
  for (const line of ['del svc 10.0.1.1,tcp:22', 'add blk2 10.0.1.9', 'swap blk blk2', 'add nets 10.0.2.2']) {
    const r = ipsetBoth(pair, line.split(' '));
    t.equal(r.ours.status, r.legacy.status, `ipset ${line}: exit ${r.legacy.status}`);
  }
  checkOutcomes(t, pair.probe(probes('after del, swap')));
  ipsetBoth(pair, ['swap', 'blk', 'blk2']);
  sleep(2200);
  checkOutcomes(t, pair.probe(probes('after a timeout ran out')));
  for (const line of ['destroy blk', 'flush blk', 'list -n', 'rename blk2 other', 'destroy blk2']) {
    const r = ipsetBoth(pair, line.split(' '));
    t.equal(r.ours.status, r.legacy.status, `ipset ${line}: exit ${r.legacy.status}`);
    t.equal(r.ours.stderr, r.legacy.stderr, `ipset ${line}: same message`);
  }
});

t.test('-m set in ip6tables with IPv6 sets', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore', 'ipset'])) return;
  prepareState();
  const pair = new DiffPair(6);
  t.teardown(() => pair.destroy());
  // hash:net and hash:ip,port put the address behind a 4-byte prefix length or port (an unaligned stack store the verifier refused)
  for (const line of ['create s6 hash:net,port family inet6', 'add s6 fd00:2::/64,udp:7000', 'create h6 hash:ip family inet6', 'add h6 fd00:1::2',
    'create n6 hash:net family inet6', 'add n6 fd00:2::/120', 'create m6 hash:net family inet6', 'add m6 fd00:2::100/120', 'create p6 hash:ip,port family inet6', 'add p6 fd00:1::2,udp:7002']) {
    const r = ipsetBoth(pair, line.split(' '));
    t.equal(r.ours.status, r.legacy.status, `ipset ${line}: exit ${r.legacy.status}`);
  }
  const l = pair.load(`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m set --match-set s6 dst,dst -j DROP
-A INPUT -p udp -m set --match-set h6 src -j DROP
-A FORWARD -m set --match-set n6 dst -p udp --dport 7003 -j DROP
-A FORWARD -m set --match-set m6 dst -p udp --dport 7004 -j DROP
-A FORWARD -m set --match-set p6 src,dst -j DROP
COMMIT
`);
  t.equal(l.oursStatus, 0, `our restore succeeded ${l.ours}`);
  const udp6 = (dst: string, dport: number): Buffer => ip6Packet({ src: 'fd00:1::2', dst, proto: 17, payload: udpDatagram6('fd00:1::2', dst, 5000, dport) });
  checkOutcomes(t, pair.probe([
    { name: 'forwarded to a listed network and port', where: 'forward', packet: udp6('fd00:2::2', 7000), expect: false },
    { name: 'forwarded to another port', where: 'forward', packet: udp6('fd00:2::2', 7001), expect: true },
    { name: 'from a listed address', where: 'input', packet: udp6('fd00:1::1', 1), expect: false },
    { name: 'forwarded into a listed network (hash:net)', where: 'forward', packet: udp6('fd00:2::2', 7003), expect: false },
    { name: 'forwarded outside the listed network (hash:net)', where: 'forward', packet: udp6('fd00:2::2', 7004), expect: true },
    { name: 'from a listed address and port (hash:ip,port)', where: 'forward', packet: udp6('fd00:2::2', 7002), expect: false },
  ]), 'ip6tables');
});

t.test('ipset commands answer like ipset', async (t) => {
  if (!requireKernel(t, ['ipset'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  const steps = [
    'create a hash:ip', 'create a hash:ip', '-exist create a hash:ip', 'create b hash:bogus', 'create c hash:ip,port family inet6',
    'add a 10.0.0.1', 'add a 10.0.0.1', '-exist add a 10.0.0.1', 'add a 10.0.0.0/30', 'del a 10.0.0.9', '-exist del a 10.0.0.9', 'del a 10.0.0.1',
    'test a 10.0.0.2', 'test a 10.0.0.1', 'add nope 1.2.3.4', 'list nope', 'flush nope', 'destroy nope', 'add a 10.0.0.5 timeout 5',
    'add c 2001:db8::1,udp:53', 'test c 2001:db8::1,udp:53', 'test c 2001:db8::1,tcp:53', 'swap a c', 'rename a c', 'rename a d', 'list -n',
    'bogus', '', 'flush', 'destroy',
  ];
  for (const line of steps) {
    const args = line ? line.split(' ') : [];
    const r = ipsetBoth(pair, args);
    t.equal(r.ours.status, r.legacy.status, `ipset ${line}: exit ${r.legacy.status}`);
    t.equal(r.ours.stdout, r.legacy.stdout, `ipset ${line}: stdout`);
    t.equal(r.ours.stderr, r.legacy.stderr, `ipset ${line}: stderr`);
  }
});

t.test('ipset save output restores the same sets', async (t) => {
  if (!requireKernel(t, ['ipset'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  const ours = (args: string[], input?: string): ReturnType<typeof nsExec> => nsExec(pair.ours.router, path.join(BIN, 'ipset'), args, input);
  for (const line of ['create a hash:ip timeout 600', 'add a 10.0.0.1', 'add a 10.0.0.2 timeout 0', 'add a 10.0.0.16/29', 'create n6 hash:net,port family inet6', 'add n6 2001:db8::/32,udp:53']) {
    t.equal(ours(line.split(' ')).status, 0, `ipset ${line}`);
  }
  const saved = ours(['save']).stdout;
  t.match(saved, /^create a hash:ip family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12 initval 0x[0-9a-f]{8}\n/, 'save starts with the header');
  t.equal(ours(['destroy']).status, 0, 'destroyed');
  t.equal(ours(['list', '-n']).stdout, '', 'no sets left');
  t.equal(ours(['restore'], saved).status, 0, 'restored from the saved text');
  const mask = (text: string): string => text.replace(/timeout (\d+)\n/g, (m, n) => (n === '0' ? m : 'timeout T\n'));
  t.equal(mask(ours(['save']).stdout), mask(saved), 'saved again: the same headers and members');
  t.equal(ours(['test', 'n6', '2001:db8::7,udp:53']).status, 0, 'a restored network answers tests');
  t.equal(ours(['restore'], 'create a hash:ip\n').status, 1, 'restoring a set that exists fails');
  t.match(ours(['restore'], 'create a hash:ip\n').stderr, /Error in line 1: Set cannot be created: set with the same name already exists/, 'with the line named');
  // the kernel's ipset grows a set on demand; a BPF hash reserves its elements: a size no map can have is refused by name
  const huge = ours(['create', 'huge', 'hash:ip', 'maxelem', '4294967295']);
  t.equal(huge.status, 1, 'a set no BPF map can hold is refused');
  t.match(huge.stderr, /Kernel error received: maxelem 4294967295 is more than the kernel gives one BPF map \(E2BIG\): bpftables reserves a set's elements in advance, so use a smaller maxelem/, 'naming maxelem and what to do');
  t.notMatch(ours(['list', '-n']).stdout, /huge/, 'and nothing is left of it');
});

t.test("ipset restore beside the kernel's: lines in order, sets kept open between lines, the first refused line named", async (t) => {
  if (!requireKernel(t, ['ipset'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  const run = (where: 'legacy' | 'ours', args: string[], input?: string) => nsExec(pair[where].router, where === 'legacy' ? 'ipset' : path.join(BIN, 'ipset'), args, input);
  /** the members of every set, as save lists them, sorted (headers carry a random initval; timeouts run) */
  const members = (where: 'legacy' | 'ours'): string[] => run(where, ['save']).stdout.split('\n').filter((l) => l.startsWith('add ')).map((l) => l.replace(/ timeout \d+$/, ' timeout T')).sort();
  const many = (set: string, from: number, n: number): string => Array.from({ length: n }, (_, i) => `add ${set} 10.9.${(from + i) >> 8}.${(from + i) & 255}\n`).join('');
  const inputs: [string, string[], string][] = [
    ['interleaved sets, a del and a flush between adds', ['restore'], `create a hash:ip\ncreate b hash:net timeout 600\n${many('a', 0, 300)}add b 10.8.0.0/16\n${many('a', 300, 5)}del a 10.9.0.7\nadd b 10.7.0.0/24 timeout 100\nflush b\nadd b 10.6.0.0/24\n${many('a', 400, 50)}`],
    // swap and rename change which set a name opens: a set kept open from before them would take the wrong adds
    ['adds after a swap and a rename go to the set the name has then', ['restore'], `create s1 hash:ip\ncreate s2 hash:ip\nadd s1 10.9.0.1\nadd s2 10.9.0.2\nswap s1 s2\nadd s1 10.9.0.3\nadd s2 10.9.0.4\nrename s1 s3\nadd s3 10.9.0.5\ncreate s1 hash:ip\nadd s1 10.9.0.6\n`],
    ['a set destroyed and made again under its name', ['restore'], `create t1 hash:ip\nadd t1 10.9.0.1\ndestroy t1\ncreate t1 hash:net\nadd t1 10.9.0.0/24\n`],
    ['an element added twice: refused at its second line, the lines before it in force', ['restore'], `create c hash:ip\n${many('c', 0, 40)}add c 10.9.0.3\n${many('c', 100, 10)}`],
    ['twice with -exist for the whole restore', ['-exist', 'restore'], `create d hash:ip timeout 600\n${many('d', 0, 20)}add d 10.9.0.3 timeout 50\n${many('d', 100, 10)}`],
    ['a range expanding to several elements, one of them there already', ['restore'], `create e hash:ip\nadd e 10.9.0.5\n${many('e', 10, 10)}add e 10.9.0.1-10.9.0.8\nadd e 10.9.1.1\n`],
    ['a set made here, an element twice under -exist', ['-exist', 'restore'], `create h hash:ip\n${many('h', 0, 30)}add h 10.9.0.3\n${many('h', 100, 5)}`],
    ['networks, one twice', ['restore'], `create n hash:net\nadd n 10.10.0.0/16\nadd n 10.11.0.0/24\nadd n 10.12.0.0/24\nadd n 10.10.0.0/16\nadd n 10.13.0.0/24\n`],
    ['an existing set, then one made here, then the existing one again', ['restore'], `add e 10.9.2.1\ncreate k hash:ip\n${many('k', 0, 20)}add e 10.9.2.2\nadd k 10.9.0.1\n`],
  ];
  for (const [what, args, input] of inputs) {
    const l = run('legacy', args, input), o = run('ours', args, input);
    t.equal(o.status, l.status, `${what}: exit ${l.status}`);
    t.equal(o.stderr, l.stderr, `${what}: stderr`);
    t.same(members('ours'), members('legacy'), `${what}: the same members`);
  }
  // (the kernel's ipset drops the adds it has not sent yet when it finds an error itself: see README, Limitations)
  const bad = run('ours', ['restore'], `create m hash:ip\n${many('m', 0, 50)}add m\nadd m 10.9.1.1\n`);
  t.equal(bad.status, 1, 'a line that fails ends the restore');
  t.match(bad.stderr, /Error in line 52: Syntax error: missing mandatory argument: ENTRY/);
  t.same(members('ours').filter((l) => l.startsWith('add m ')).length, 50, 'the lines before it are in force, the one after is not');
});
