/**
 * mark, connmark, dscp, tos, ecn, pkttype, mac, limit, statistic and tcpmss through the kernel, beside
 * iptables-legacy: marks set by the mangle table (iptables-legacy in both
 * routers), TOS bytes, multicast delivery, a burst of packets against a
 * token bucket, every-nth counting; each probe delivered or dropped alike.
 */
import t from 'tap';
import { nsExecOk, sleep } from '../compat/lab';
import { cutIpv4, ipPacket, tcpPacket, udpDatagram, udpPacket } from '../compat/probes';
import path from 'node:path';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

const RULES = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 7001:7003 -m mark --mark 0x1 -j ACCEPT
-A INPUT -p udp -m udp --dport 7001:7003 -m mark --mark 0x4/0x4 -j ACCEPT
-A INPUT -p udp -m udp --dport 7010 -m dscp --dscp 0x2e -j ACCEPT
-A INPUT -p udp -m udp --dport 7011 -m tos --tos Minimize-Delay -j ACCEPT
-A INPUT -p udp -m udp --dport 7012 -m tos ! --tos 0x00/0xfc -j ACCEPT
-A INPUT -d 224.0.0.1/32 -p udp -m pkttype --pkt-type multicast -j ACCEPT
-A INPUT -p udp -m udp --dport 7020 -m pkttype --pkt-type unicast -j ACCEPT
-A INPUT -p udp -m udp --dport 7021 -m pkttype ! --pkt-type unicast -j ACCEPT
-A INPUT -p udp -m udp --dport 7030 -m limit --limit 1/hour --limit-burst 3 -j ACCEPT
-A INPUT -p udp -m udp --dport 7031 -m statistic --mode nth --every 3 --packet 1 -j ACCEPT
-A INPUT -p udp -m udp --dport 7032 -m statistic --mode random --probability 1 -j ACCEPT
-A INPUT -p udp -m udp --dport 7033 -m statistic --mode random --probability 0 -j ACCEPT
-A INPUT -p udp -m udp --dport 7034 -m limit --limit 20/sec --limit-burst 2 -j ACCEPT
-A INPUT -p udp -m udp --dport 7035 -m statistic --mode nth ! --every 2 --packet 0 -j ACCEPT
-A INPUT -p udp -m udp --dport 7040 -m mac --mac-source 02:00:00:00:01:02 -j ACCEPT
-A INPUT -p udp -m udp --dport 7041 -m mac --mac-source 02:00:00:00:01:03 -j ACCEPT
-A INPUT -p udp -m udp --dport 7042 -m mac ! --mac-source 02:00:00:00:01:03 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7043 -m mac --mac-source 02:00:00:00:01:02 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7044 -m mac ! --mac-source 02:00:00:00:01:02 -j ACCEPT
-A INPUT -p udp -m udp --dport 7050 -m ecn --ecn-ip-ect 2 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7051 -m ecn --ecn-tcp-ece ! --ecn-tcp-cwr -j ACCEPT
-A FORWARD -p tcp -m ecn --ecn-tcp-ece -m length --length 60 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7060 -m tcpmss --mss 1000:1500 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7061 -m tcpmss ! --mss 1000:1500 -j ACCEPT
COMMIT
`;

const C = '10.0.1.2', R = '10.0.1.1';
const udp = (dport: number, tos = 0, dst = R): Buffer => udpPacket(C, dst, 5000, dport, { tos });
const repeat = (n: number, name: string, dport: number): ProbeSpec[] => Array.from({ length: n }, (_, i) => ({ name: `${name} #${i + 1}`, where: 'input' as const, packet: udp(dport) }));

const mssOpt = (mss: number): number[] => [2, 4, mss >> 8, mss & 0xff];
const syn = (dport: number, options: number[]): Buffer => tcpPacket(C, R, { sport: 4000, dport, flags: 0x02, options: Buffer.from(options) });
/** A SYN whose header announces options the packet does not hold. */
function cutOptions(): Buffer {
  return cutIpv4(syn(7061, mssOpt(1460)), 4);
}
const TCPMSS_PROBES: ProbeSpec[] = [
  { name: 'tcpmss: MSS 1460', where: 'input', packet: syn(7060, mssOpt(1460)), expect: true },
  { name: 'tcpmss: MSS 536', where: 'input', packet: syn(7060, mssOpt(536)), expect: false },
  { name: 'tcpmss: NOPs, then MSS 1400', where: 'input', packet: syn(7060, [1, 1, ...mssOpt(1400)]), expect: true },
  { name: 'tcpmss: no options', where: 'input', packet: syn(7060, []), expect: false },
  { name: 'tcpmss: no options (inverted)', where: 'input', packet: syn(7061, []), expect: true },
  { name: 'tcpmss: MSS 1460 (inverted)', where: 'input', packet: syn(7061, mssOpt(1460)), expect: false },
  { name: 'tcpmss: options cut short (dropped)', where: 'input', packet: cutOptions(), expect: false },
  { name: 'tcpmss: an MSS kind with length 3 is skipped', where: 'input', packet: syn(7061, [2, 3, 5, 1, 0, 0, 0, 0]), expect: true },
  { name: 'tcpmss: MSS after end-of-options (the kernel reads on)', where: 'input', packet: syn(7060, [1, 0, ...mssOpt(1200), 0, 0]), expect: true },
  { name: 'tcpmss: a zero-length option, then MSS', where: 'input', packet: syn(7060, [8, 0, ...mssOpt(1200), 0, 0]), expect: true },
  { name: 'tcpmss: an MSS cut by the end of the options', where: 'input', packet: syn(7061, [1, 1, 1, 1, 1, 2, 4, 5]), expect: true },
  { name: 'tcpmss: SACK-permitted, timestamps, window scale, MSS last', where: 'input', packet: syn(7060, [4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7, ...mssOpt(1024)]), expect: true },
];

const PROBES: ProbeSpec[] = [
  { name: 'mark 1 (mangle)', where: 'input', packet: udp(7001), expect: true },
  { name: 'mark 6 under mask 4', where: 'input', packet: udp(7002), expect: true },
  { name: 'no mark', where: 'input', packet: udp(7003), expect: false },
  { name: 'dscp EF', where: 'input', packet: udp(7010, 0xb8), expect: true },
  { name: 'dscp EF with ECN bits', where: 'input', packet: udp(7010, 0xbb), expect: true },
  { name: 'dscp AF11', where: 'input', packet: udp(7010, 0x28), expect: false },
  { name: 'tos Minimize-Delay', where: 'input', packet: udp(7011, 0x10), expect: true },
  { name: 'tos Minimize-Delay with precedence bits', where: 'input', packet: udp(7011, 0xd0), expect: true },
  { name: 'tos 0x08', where: 'input', packet: udp(7011, 0x08), expect: false },
  { name: 'tos zero under 0xfc (inverted)', where: 'input', packet: udp(7012, 0x03), expect: false },
  { name: 'tos 0x04 under 0xfc (inverted)', where: 'input', packet: udp(7012, 0x04), expect: true },
  { name: 'multicast to all-hosts', where: 'input', packet: udp(9999, 0, '224.0.0.1'), expect: true },
  { name: 'unicast', where: 'input', packet: udp(7020), expect: true },
  { name: 'unicast, not multicast', where: 'input', packet: udp(7021), expect: false },
  ...repeat(5, 'limit 1/hour burst 3', 7030),
  ...repeat(7, 'nth every 3 from 1', 7031),
  { name: 'random probability 1', where: 'input', packet: udp(7032), expect: true },
  { name: 'random probability 0', where: 'input', packet: udp(7033), expect: false },
  ...repeat(5, 'limit 20/sec burst 2, back to back', 7034),
  ...repeat(4, 'not every 2nd', 7035),
  { name: 'mac: the client\'s address', where: 'input', packet: udp(7040), expect: true },
  { name: 'mac: another address', where: 'input', packet: udp(7041), expect: false },
  { name: 'mac: not another address', where: 'input', packet: udp(7042), expect: true },
  { name: 'mac: forwarded from the client', where: 'forward', packet: udpPacket(C, '10.0.2.2', 5000, 7043), expect: true },
  { name: 'mac: forwarded, inverted', where: 'forward', packet: udpPacket(C, '10.0.2.2', 5000, 7044), expect: false },
  { name: 'ecn: ECT(0)', where: 'input', packet: udp(7050, 0x02), expect: true },
  { name: 'ecn: CE', where: 'input', packet: udp(7050, 0x03), expect: false },
  { name: 'ecn: ECE without CWR', where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 7051, flags: 0x42 }), expect: true },
  { name: 'ecn: ECE with CWR', where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 7051, flags: 0xc2 }), expect: false },
  // xt_ecn reads a non-first fragment's payload as if it were the TCP header
  { name: 'ecn: a tcp fragment whose 14th payload byte looks like ECE', where: 'forward', packet: ipPacket({ src: C, dst: '10.0.2.2', proto: 6, fragOff: 5, payload: Buffer.from([...Array(13).fill(0), 0x40, ...Array(26).fill(0)]) }), expect: true },
  { name: 'ecn: a tcp fragment without it', where: 'forward', packet: ipPacket({ src: C, dst: '10.0.2.2', proto: 6, fragOff: 5, payload: Buffer.alloc(40) }), expect: false },
  ...TCPMSS_PROBES,
];

t.test('mark, dscp, tos, pkttype, limit, statistic and tcpmss filter like iptables-legacy', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  for (const router of [pair.legacy.router, pair.ours.router]) {
    nsExecOk(router, 'iptables-legacy', ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '7001', '-j', 'MARK', '--set-mark', '1']);
    nsExecOk(router, 'iptables-legacy', ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '7002', '-j', 'MARK', '--set-mark', '6']);
  }
  const r = pair.load(RULES);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const outcomes = pair.probe(PROBES);
  checkOutcomes(t, outcomes);
  const count = (prefix: string): number => outcomes.filter((o) => o.name.startsWith(prefix) && o.legacy).length;
  t.equal(count('limit 1/hour'), 3, 'the kernel lets the burst (3) through');
  t.equal(count('nth every 3'), 2, 'every third packet from the second one');
  t.equal(count('limit 20/sec'), 2, 'a fast burst of 5 meets a bucket of 2');
});

// connmark needs connection tracking, which also reassembles fragments: a namespace pair of its own
t.test('connmark filters like iptables-legacy (marks set by CONNMARK in the mangle table)', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  for (const router of [pair.legacy.router, pair.ours.router]) {
    nsExecOk(router, 'iptables-legacy', ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '7060', '-j', 'CONNMARK', '--set-mark', '5']);
  }
  const r = pair.load(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 7060:7061 -m connmark --mark 0x5 -j ACCEPT
-A INPUT -p udp -m udp --dport 7062 -m connmark ! --mark 0x4/0x4 -j ACCEPT
-A INPUT -p udp -m udp --dport 7063 -m connmark ! --mark 0x5 -j ACCEPT
COMMIT
`);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const outcomes = pair.probe([
    { name: 'connmark 5 (set by CONNMARK in mangle)', where: 'input', packet: udp(7060), expect: true },
    { name: 'connmark 5, a later packet of the connection', where: 'input', packet: udp(7060), expect: true },
    { name: 'no connmark', where: 'input', packet: udp(7061), expect: false },
    { name: 'connmark 0 under mask 4 (inverted)', where: 'input', packet: udp(7062), expect: true },
    { name: 'connmark 0, not 5 (inverted)', where: 'input', packet: udp(7063), expect: true },
  ]);
  checkOutcomes(t, outcomes);
});

const RECENT_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9100 -m recent --set --name T1 --mask 255.255.255.255 --rsource
-A INPUT -p udp -m udp --dport 9101 -m recent --rcheck --name T1 --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9102 -m recent --update --seconds 60 --hitcount 3 --name T1 --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9103 -m recent ! --rcheck --name T1 --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9104 -m recent --remove --name T1 --mask 255.255.255.255 --rsource
-A INPUT -p udp -m udp --dport 9105 -m recent --rcheck --rttl --name T1 --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9106 -m recent --set --name T2 --mask 255.255.255.0 --rdest
-A INPUT -p udp -m udp --dport 9107 -m recent --rcheck --seconds 1 --name T2 --mask 255.255.255.0 --rdest -j DROP
-A INPUT -p udp -m udp --dport 9108 -m recent ! --update --hitcount 2 --name T1 --mask 255.255.255.255 --rsource -j DROP
COMMIT
`;

t.test('recent keeps its lists like the kernel\'s xt_recent, across a ruleset replacement', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  const r = pair.load(RECENT_RULES);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const u = (name: string, dport: number, expect?: boolean, ttl = 64): ProbeSpec => ({ name, where: 'input', packet: udpPacket(C, R, 5000, dport, { ttl }), expect });
  checkOutcomes(t, pair.probe([
    u('rcheck before any set', 9101, true), u('! rcheck before any set', 9103, false), u('! update, no entry', 9108, false),
    u('set', 9100, true), u('rcheck after set', 9101, false), u('! rcheck after set', 9103, true),
    u('update, 1 hit of 3', 9102, true), u('set again', 9100, true), u('set a third time', 9100, true),
    u('update, 3 hits of 3', 9102, false), u('update again (the last one counted)', 9102, false),
    u('! update with 2 hits wanted', 9108, true), u('rcheck with the same TTL', 9105, false), u('rcheck with another TTL', 9105, true, 30),
    u('set by destination /24', 9106, true), u('rcheck by destination within 1 s', 9107, false),
  ]));
  sleep(1200);
  // replacing the ruleset keeps the lists its rules still name
  t.equal(pair.load(RECENT_RULES).oursStatus, 0, 'the same rules restored again');
  checkOutcomes(t, pair.probe([
    u('rcheck after the replacement', 9101, false), u('rcheck by destination after 1 s', 9107, true),
    u('remove', 9104, true), u('rcheck after remove', 9101, true),
  ]));
  // a ruleset without the rules frees the lists
  pair.probe([u('set before the lists go', 9100, true)]);
  pair.load('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n');
  t.equal(pair.load(RECENT_RULES).oursStatus, 0, 'the rules back');
  checkOutcomes(t, pair.probe([u('rcheck: the list was freed with its rules', 9101, true)]));
});

const HASHLIMIT_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -f -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 1 --hashlimit-mode dstport --hashlimit-name h9 -j DROP
-A INPUT -p udp -m udp --dport 9200 -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip,dstport --hashlimit-name h1 -j ACCEPT
-A INPUT -p udp -m udp --dport 9200 -j DROP
-A INPUT -p udp -m udp --dport 9201 -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 2 --hashlimit-name h2 -j DROP
-A INPUT -p udp -m udp --dport 9202 -m hashlimit --hashlimit-upto 20/sec --hashlimit-burst 2 --hashlimit-mode dstport --hashlimit-name h3 --hashlimit-htable-expire 1000 -j ACCEPT
-A INPUT -p udp -m udp --dport 9202 -j DROP
-A INPUT -p udp -m udp --dport 9203 -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name h4 -j ACCEPT
-A INPUT -p udp -m udp --dport 9203 -j DROP
-A INPUT -p udp -m udp --dport 9204 -m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 2kb --hashlimit-name h5 -j ACCEPT
-A INPUT -p udp -m udp --dport 9204 -j DROP
-A INPUT -p udp -m udp --dport 9205 -m hashlimit --hashlimit-above 512b/s --hashlimit-mode srcip --hashlimit-name h6 -j DROP
-A INPUT -p udp -m udp --dport 9206 -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 3 --hashlimit-name h7 --hashlimit-rate-match -j ACCEPT
-A INPUT -p udp -m udp --dport 9206 -j DROP
-A INPUT -p udp -m udp --dport 9207 -m hashlimit --hashlimit-upto 1kb/s --hashlimit-name h8 --hashlimit-rate-match -j ACCEPT
-A INPUT -p udp -m udp --dport 9207 -j DROP
COMMIT
`;

t.test('hashlimit keeps a bucket per key like the kernel\'s xt_hashlimit, across a ruleset replacement', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  t.equal(pair.load(HASHLIMIT_RULES).oursStatus, 0, 'our restore succeeded');
  const u = (name: string, dport: number, src = C): ProbeSpec => ({ name, where: 'input', packet: udpPacket(src, R, 5000, dport) });
  const n = (k: number, name: string, dport: number, src = C): ProbeSpec[] => Array.from({ length: k }, (_, i) => u(`${name} #${i + 1}`, dport, src));
  let out = pair.probe([
    ...n(5, 'upto 1/hour burst 3, one source', 9200), ...n(2, 'the same limit, another source', 9200, '10.0.1.3'),
    ...n(4, 'above 1/hour burst 2', 9201), ...n(4, 'upto 20/sec burst 2, back to back', 9202),
    ...n(2, 'srcmask 24: one source', 9203), ...n(1, 'srcmask 24: a neighbour in the same /24', 9203, '10.0.1.4'),
    ...n(80, 'bytes: upto 1kb/s, burst 2kb, small datagrams', 9204),
    ...Array.from({ length: 4 }, (_, i) => ({ name: `bytes: above 512b/s, a 1000-byte datagram #${i + 1}`, where: 'input' as const, packet: ipPacket({ src: C, dst: R, proto: 17, payload: udpDatagram(C, R, 5000, 9205, Buffer.alloc(1000)) }) })),
    ...n(12, 'rate-match: 5/sec and 3 more per window', 9206), ...n(40, 'rate-match: 1kb per window', 9207),
    // later fragments (forwarded: local delivery reassembles first): the kernel reads their "ports" where a first
    // fragment's would be (the payload)
    ...[9400, 9401, 9400].map((port, i) => ({ name: `later fragment, payload "port" ${port} #${i + 1}`, where: 'forward' as const, packet: ipPacket({ src: C, dst: '10.0.2.2', proto: 17, fragOff: 5, payload: udpDatagram(C, '10.0.2.2', 5000, port) }) })),
  ]);
  checkOutcomes(t, out);
  const passed = (prefix: string): number => out.filter((o) => o.name.startsWith(prefix) && o.legacy).length;
  t.equal(passed('upto 1/hour'), 3, 'the kernel lets the burst through');
  t.equal(passed('the same limit, another source'), 2, 'another source has its own bucket');
  t.equal(passed('above 1/hour'), 2, 'above: dropped once the burst is spent');
  t.equal(passed('later fragment'), 2, 'the kernel keys later fragments by the payload\'s first four bytes');
  t.equal(passed('rate-match: 5/sec'), 8, 'rate-match: the rate and the burst fit in one window');
  t.equal(passed('rate-match: 1kb'), 31, 'rate-match in bytes: 31 datagrams of 33 bytes fit in 1024');
  t.ok(passed('bytes: upto') > 20 && passed('bytes: upto') < 80, `bytes: a full second's worth and two refills (${passed('bytes: upto')} of 80)`);
  sleep(1300);
  t.equal(pair.load(HASHLIMIT_RULES).oursStatus, 0, 'the same rules restored again');
  out = pair.probe([...n(2, 'after the replacement, the spent bucket', 9200), ...n(3, 'an entry idle past htable-expire starts over', 9202),
    ...n(3, 'rate-match: the window after an overfull one', 9206)]);
  checkOutcomes(t, out);
  t.equal(passed('after the replacement'), 0, 'the bucket was kept');
});

t.test('addrtype reads the local routing table like the kernel, and follows its changes', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  const r = pair.load(`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9300 -m addrtype --dst-type LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9301 -m addrtype --dst-type BROADCAST -j DROP
-A INPUT -p udp -m udp --dport 9302 -m addrtype --src-type UNICAST,LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9303 -m addrtype --dst-type LOCAL --limit-iface-in -j DROP
-A INPUT -p udp -m udp --dport 9304 -m addrtype ! --dst-type LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9307 -m addrtype --dst-type MULTICAST -j DROP
-A FORWARD -p udp -m udp --dport 9305 -m addrtype --dst-type UNICAST -j DROP
-A FORWARD -p udp -m udp --dport 9306 -m addrtype --dst-type UNICAST --limit-iface-out -j DROP
-A INPUT -p udp -m udp --dport 9308 -m addrtype ! --dst-type BROADCAST -j DROP
-A INPUT -p udp -m udp --dport 9309 -m addrtype ! --dst-type LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9310 -m addrtype --src-type BLACKHOLE,UNREACHABLE,PROHIBIT,THROW -j DROP
-A INPUT -p udp -m udp --dport 9311 -m addrtype --src-type UNICAST -j DROP
COMMIT
`);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const u = (name: string, dport: number, dst = R, where: 'input' | 'forward' = 'input'): ProbeSpec => ({ name, where, packet: udpPacket(C, dst, 5000, dport) });
  const probes = (tag: string): ProbeSpec[] => [
    u(`${tag}: to a local address`, 9300), u(`${tag}: to the subnet broadcast`, 9301, '10.0.1.255'), u(`${tag}: to 255.255.255.255`, 9301, '255.255.255.255'),
    u(`${tag}: a unicast source`, 9302), u(`${tag}: local on the input device`, 9303), u(`${tag}: local on another device`, 9303, '10.0.2.1'),
    u(`${tag}: not local, inverted`, 9304), u(`${tag}: multicast`, 9307, '224.0.0.1'),
    u(`${tag}: forwarded to a unicast address`, 9305, '10.0.2.2', 'forward'), u(`${tag}: forwarded, limited to the output device`, 9306, '10.0.2.2', 'forward'),
    u(`${tag}: to 10.0.1.50, dropped unless local`, 9309, '10.0.1.50'), u(`${tag}: to 10.0.3.255, dropped unless broadcast`, 9308, '10.0.3.255'),
  ];
  checkOutcomes(t, pair.probe(probes('before')));
  // a new address and network on the router: local and broadcast routes appear in the local table
  for (const router of [pair.legacy.router, pair.ours.router]) {
    nsExecOk(router, 'ip', ['addr', 'add', '10.0.1.50/24', 'dev', 'r0']);
    nsExecOk(router, 'ip', ['addr', 'add', '10.0.3.1/24', 'dev', 'r1']);
  }
  sleep(300);
  const after = pair.probe(probes('after'));
  checkOutcomes(t, after);
  // delivered only when the new routes are seen (a stale mirror would call them unicast and drop them)
  t.ok(after.find((o) => o.name === 'after: to 10.0.1.50, dropped unless local')!.legacy, 'the kernel sees the new address as local');
  t.ok(after.find((o) => o.name === 'after: to 10.0.3.255, dropped unless broadcast')!.legacy, 'and the new network\'s broadcast address as broadcast');
  // routes that answer a lookup with an error (blackhole, unreachable, prohibit, throw) in the local
  // table: the kernel's lookup fails there, so the address is UNICAST, whatever the route's type
  for (const router of [pair.legacy.router, pair.ours.router]) {
    for (const [type, net] of [['blackhole', 5], ['throw', 6], ['prohibit', 7], ['unreachable', 8]] as const) nsExecOk(router, 'ip', ['route', 'add', type, `10.0.${net}.0/24`, 'table', 'local']);
  }
  sleep(300);
  const from = (name: string, dport: number, src: string): ProbeSpec => ({ name, where: 'input', packet: udpPacket(src, R, 5000, dport) });
  const errors = pair.probe([5, 6, 7, 8].flatMap((net) => [from(`a source in a local-table ${net}: an error route's type`, 9310, `10.0.${net}.5`), from(`a source in a local-table ${net}: unicast`, 9311, `10.0.${net}.5`)]));
  checkOutcomes(t, errors);
  t.equal(errors.filter((o) => o.legacy).length, 4, 'the kernel calls them unicast, never by their routes\' types');
});

t.test('bpftables recent lists, adds and removes entries like /proc/net/xt_recent', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  t.equal(pair.load(RECENT_RULES).oursStatus, 0, 'our restore succeeded');
  const u = (name: string, dport: number, src = C): ProbeSpec => ({ name, where: 'input', packet: udpPacket(src, R, 5000, dport) });
  pair.probe([u('set', 9100), u('set again', 9100), u('set from another address', 9100, '10.0.1.7')]);
  // jiffies differ between the two routers' lists: compare the lines with every number but the TTL masked
  const mask = (text: string): string[] => text.split('\n').filter(Boolean).map((l) => l.replace(/(last_seen|oldest_pkt): \d+/g, '$1: N').replace(/(,? )\d{6,}/g, '$1N')).sort();
  const ours = (...args: string[]): string => nsExecOk(pair.ours.router, path.join(BIN, 'bpftables'), ['recent', ...args]);
  const kernel = (op?: string): string => (op
    ? nsExecOk(pair.legacy.router, 'sh', ['-c', `echo ${op} > /proc/net/xt_recent/T1`])
    : nsExecOk(pair.legacy.router, 'cat', ['/proc/net/xt_recent/T1']));
  t.equal(mask(kernel()).length, 2, 'the kernel lists two addresses');
  t.same(mask(ours('T1')), mask(kernel()), 'the same entries, stamps and TTLs');
  t.match(ours(), /^T1\nT2\n$/, 'the lists by name');
  for (const op of ['+10.0.1.9', '-10.0.1.7']) { kernel(op); ours('T1', op); }
  checkOutcomes(t, pair.probe([u('rcheck: added by hand', 9101, '10.0.1.9'), u('rcheck: removed by hand', 9101, '10.0.1.7'), u('rcheck: still there', 9101)]));
  kernel('/'); ours('T1', '/');
  t.equal(ours('T1'), '', 'cleared');
  checkOutcomes(t, pair.probe([u('rcheck after clearing', 9101)]));
});
