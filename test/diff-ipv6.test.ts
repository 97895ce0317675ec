/**
 * IPv6 through the kernel: the same ip6tables ruleset loaded with
 * ip6tables-legacy-restore in one router namespace and with bpftables'
 * ip6tables-restore in another; crafted IPv6 packets (extension-header
 * chains, truncated chains and headers, fragments, ICMPv6, hop limits) go
 * through INPUT, FORWARD and OUTPUT over veth, and every delivered/dropped
 * outcome must be the same.
 */
import t from 'tap';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { nsExec, nsExecOk, sleep } from '../compat/lab';
import { prepareState, requireKernel } from './helpers/env';
import { authHeader, fragmentHeader, icmp6Packet, ip6Packet, optionsHeader, routingHeader, TCP, tcp6Packet, udp6Packet, udpDatagram6 } from '../compat/probes';

const RULES = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:IN_TCP - [0:0]
:IN_ICMP - [0:0]
:FWD - [0:0]
-A INPUT -s 2001:db8:bad::/48 -j DROP
-A INPUT -p tcp -j IN_TCP
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -p udp -m multiport --dports 500:510,4500 -m hl --hl-gt 10 -j ACCEPT
-A INPUT -p udp -m length --length 56 -j ACCEPT
-A INPUT -p ipv6-icmp -j IN_ICMP
-A INPUT -p 59 -j ACCEPT
-A INPUT -p gre -j ACCEPT
-A INPUT -p 44 -j ACCEPT
-A INPUT -p esp -s fd00:1::/ffff:ffff:ffff:ffff:: -j ACCEPT
-A INPUT -m hl --hl-eq 7 -j ACCEPT
-A IN_TCP -p tcp -m tcp --dport 22 -j ACCEPT
-A IN_TCP -p tcp -m tcp ! --dport 0:1023 --syn -j ACCEPT
-A IN_TCP -p tcp -m iprange --src-range fd00:1::2-fd00:1::9 -m tcp --dport 80 -j ACCEPT
-A IN_ICMP -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
-A IN_ICMP -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j ACCEPT
-A IN_ICMP -p ipv6-icmp -m icmp6 ! --icmpv6-type packet-too-big -m hl --hl-eq 255 -j ACCEPT
-A FORWARD -i r1 -j ACCEPT
-A FORWARD -i r0 -o r1 -d fd00:2::/64 -j FWD
-A FORWARD -p udp -m udp --dport 7 -j ACCEPT
-A FORWARD -m hl --hl-eq 6 -j ACCEPT
-A FWD -p tcp -m tcp --dport 443 -j ACCEPT
-A FWD -p udp -j RETURN
-A FWD -p all -m length --length 0:50 -j ACCEPT
-A FWD ! -s fd00:1::2 -j DROP
-A FWD -p tcp -m multiport --sports 1000:1010 -j ACCEPT
-A OUTPUT -o r0 -p udp -m udp --sport 111 -j DROP
-A OUTPUT -o r0 -p ipv6-icmp -m length ! --length 0:100 -j DROP
-A OUTPUT -o r0 -m hl --hl-lt 3 -j DROP
COMMIT
`;

const C = 'fd00:1::2', R = 'fd00:1::1', S = 'fd00:2::2';
const syn = (sport: number, dport: number, src = C, dst = R, extra = {}): Buffer => tcp6Packet(src, dst, { sport, dport, flags: TCP.SYN }, extra);
/** a destination-options header cut after its first two bytes: the kernel still finds `next` behind it (8 bytes on) */
const cutOptions = (src: string, dst: string, next: number, hopLimit: number): Buffer => {
  const p = ip6Packet({ src, dst, proto: next, hopLimit, ext: [optionsHeader(60)], payload: Buffer.alloc(0) });
  const cut = Buffer.from(p.subarray(0, 42));
  cut.writeUInt16BE(2, 4);
  return cut;
};
/** only one byte of a destination-options header: the chain cannot be followed */
const brokenChain = (src: string, dst: string, hopLimit: number): Buffer => {
  const p = Buffer.from(cutOptions(src, dst, 6, hopLimit).subarray(0, 41));
  p.writeUInt16BE(1, 4);
  return p;
};

const PROBES: ProbeSpec[] = [
  { name: 'in: ssh', where: 'input', packet: syn(40000, 22), expect: true },
  { name: 'in: ssh from the blocked /48', where: 'input', packet: syn(40000, 22, '2001:db8:bad:1::7'), expect: false },
  { name: 'in: SYN to a high port', where: 'input', packet: syn(40000, 5555), expect: true },
  { name: 'in: SYN/ACK to a high port', where: 'input', packet: tcp6Packet(C, R, { sport: 4, dport: 5555, flags: TCP.SYN | TCP.ACK }), expect: false },
  { name: 'in: http from inside the iprange', where: 'input', packet: tcp6Packet(C, R, { sport: 4000, dport: 80, flags: TCP.ACK }), expect: true },
  { name: 'in: http from outside the iprange', where: 'input', packet: tcp6Packet('fd00:1::20', R, { sport: 4000, dport: 80, flags: TCP.ACK }), expect: false },
  { name: 'in: ssh behind hop-by-hop options', where: 'input', packet: syn(40000, 22, C, R, { ext: [optionsHeader(0)] }), expect: true },
  { name: 'in: ssh behind routing + destination options (16 bytes)', where: 'input', packet: syn(40000, 22, C, R, { ext: [routingHeader(), optionsHeader(60, 2)] }), expect: true },
  { name: 'in: ssh behind AH', where: 'input', packet: syn(40000, 22, C, R, { ext: [authHeader()] }), expect: true },
  { name: 'in: telnet behind AH', where: 'input', packet: syn(40000, 23, C, R, { ext: [authHeader()] }), expect: false },
  { name: 'in: ssh in a first fragment', where: 'input', packet: syn(40000, 22, C, R, { ext: [fragmentHeader(0, true)] }), expect: true },
  { name: 'in: truncated TCP header (hotdrop)', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 6, hopLimit: 7, payload: Buffer.from([0, 22, 0, 22]) }), expect: false },
  { name: 'in: dns', where: 'input', packet: udp6Packet(C, R, 5353, 53), expect: true },
  { name: 'in: udp 505, hop limit 64', where: 'input', packet: udp6Packet(C, R, 2000, 505), expect: true },
  { name: 'in: udp 505, hop limit 5', where: 'input', packet: udp6Packet(C, R, 2000, 505, { hopLimit: 5 }), expect: false },
  { name: 'in: udp non-first fragment of 56 bytes', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 17, ext: [fragmentHeader(3, false)], payload: Buffer.alloc(8) }), expect: true },
  { name: 'in: udp first fragment to 53', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 17, ext: [fragmentHeader(0, true)], payload: udpDatagram6(C, R, 1, 53, Buffer.alloc(16)) }), expect: true },
  { name: 'in: non-first fragment before another extension header (hotdrop)', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 60, hopLimit: 7, ext: [fragmentHeader(3, false)], payload: Buffer.alloc(8) }), expect: false },
  { name: 'in: broken extension chain (hotdrop)', where: 'input', packet: brokenChain(C, R, 7), expect: false },
  { name: 'in: gre behind a header cut short', where: 'input', packet: cutOptions(C, R, 47, 64), expect: true },
  { name: 'in: tcp behind a header cut short (hotdrop)', where: 'input', packet: cutOptions(C, R, 6, 7), expect: false },
  { name: 'in: no next header', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 59, payload: Buffer.alloc(0) }), expect: true },
  { name: 'in: -p 44 never matches a fragment header', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 17, ext: [fragmentHeader(5, false)], payload: Buffer.alloc(16) }), expect: false },
  { name: 'in: esp from the masked net', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 50, payload: Buffer.alloc(16) }), expect: true },
  { name: 'in: esp from elsewhere', where: 'input', packet: ip6Packet({ src: 'fd00:9::2', dst: R, proto: 50, payload: Buffer.alloc(16) }), expect: false },
  { name: 'in: echo request', where: 'input', packet: icmp6Packet(C, R, 128, 0), expect: true },
  { name: 'in: port unreachable (1/4)', where: 'input', packet: icmp6Packet(C, R, 1, 4), expect: true },
  { name: 'in: address unreachable, hop limit 255', where: 'input', packet: icmp6Packet(C, R, 1, 3, { hopLimit: 255 }), expect: true },
  { name: 'in: address unreachable, hop limit 64', where: 'input', packet: icmp6Packet(C, R, 1, 3), expect: false },
  { name: 'in: packet too big, hop limit 255', where: 'input', packet: icmp6Packet(C, R, 2, 0, { hopLimit: 255 }), expect: false },
  { name: 'in: truncated ICMPv6 (hotdrop)', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 58, hopLimit: 7, payload: Buffer.from([128, 0, 0, 0]) }), expect: false },
  { name: 'in: unknown protocol, hop limit 7', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 253, hopLimit: 7, payload: Buffer.alloc(8) }), expect: true },
  { name: 'fwd: https', where: 'forward', packet: syn(1000, 443, C, S), expect: true },
  { name: 'fwd: udp 7 after RETURN', where: 'forward', packet: udp6Packet(C, S, 1000, 7), expect: true },
  { name: 'fwd: udp 8', where: 'forward', packet: udp6Packet(C, S, 1000, 8), expect: false },
  { name: 'fwd: tiny unknown protocol', where: 'forward', packet: ip6Packet({ src: C, dst: S, proto: 253, payload: Buffer.alloc(4) }), expect: true },
  { name: 'fwd: broken extension chain (hotdrop before the hop-limit rule)', where: 'forward', packet: brokenChain(C, S, 7), expect: false },
  { name: 'fwd: tcp from sport 1005', where: 'forward', packet: syn(1005, 80, C, S), expect: true },
  { name: 'fwd: tcp from sport 1005, other source', where: 'forward', packet: syn(1005, 80, 'fd00:1::3', S), expect: false },
  { name: 'fwd: tcp non-first fragment, hop limit 7', where: 'forward', packet: ip6Packet({ src: C, dst: S, proto: 6, hopLimit: 7, ext: [fragmentHeader(2, false)], payload: Buffer.alloc(24) }), expect: true },
  { name: 'fwd: tcp behind hop-by-hop to 443', where: 'forward', packet: syn(1000, 443, C, S, { ext: [optionsHeader(0)] }), expect: true },
  { name: 'out: udp from 111', where: 'output', packet: udp6Packet(R, C, 111, 2000), expect: false },
  { name: 'out: udp from 112', where: 'output', packet: udp6Packet(R, C, 112, 2000), expect: true },
  { name: 'out: big ICMPv6', where: 'output', packet: ip6Packet({ src: R, dst: C, proto: 58, payload: Buffer.alloc(120) }), expect: false },
  { name: 'out: small ICMPv6', where: 'output', packet: icmp6Packet(R, C, 129, 0), expect: true },
  { name: 'out: hop limit 2', where: 'output', packet: udp6Packet(R, C, 112, 2000, { hopLimit: 2 }), expect: false },
];

t.test('bpftables filters IPv6 like ip6tables-legacy (crafted packets over veth)', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore', 'nft'])) return;
  prepareState();
  const pair = new DiffPair(6);
  t.teardown(() => pair.destroy());
  const r = pair.load(RULES);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const outcomes = pair.probe(PROBES);
  checkOutcomes(t, outcomes, 'ip6tables');
});

// hashlimit in ip6tables: the kernel finds the ports with ipv6_skip_exthdr (not the walk -p uses); what it does with
// non-first fragments, "no next header" and chains it cannot follow is decided by the kernel's own answer here.
// Only the client's packets count: the link's own ICMPv6 (neighbour discovery, MLD, from link-local addresses)
// has port 0 too, and one of them arriving first would spend the port-0 bucket the probes test (seen once in CI)
const HASHLIMIT6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s ${C}/128 -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 2 --hashlimit-mode dstport --hashlimit-name hf6 -j DROP
COMMIT
`;

t.test('hashlimit keys IPv6 packets like the kernel (fragments, no next header, broken chains)', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore', 'nft'])) return;
  prepareState();
  const pair = new DiffPair(6);
  t.teardown(() => pair.destroy());
  const r = pair.load(HASHLIMIT6);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  // a later fragment whose payload starts like UDP ports 5000 → 9400 + i
  const later = (i: number): ProbeSpec => ({ name: `udp later fragment, payload "port" ${9400 + i}`, where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 17, ext: [fragmentHeader(3, false)], payload: udpDatagram6(C, R, 5000, 9400 + i, Buffer.alloc(8)) }) });
  const to = (port: number, n: number): ProbeSpec[] => Array.from({ length: n }, (_, i) => ({ name: `udp to ${port} #${i + 1}`, where: 'input' as const, packet: udp6Packet(C, R, 5000, port) }));
  const outcomes = pair.probe([
    // the kernel stops at the first later fragment's header: port 0, whatever follows it (one bucket for all)
    { name: 'a later fragment before another extension header', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 60, ext: [fragmentHeader(3, false)], payload: Buffer.alloc(8) }) },
    ...[0, 1, 2].map(later),
    ...to(0, 1),
    ...to(9410, 3),
    { name: 'no next header', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 59, payload: Buffer.alloc(8) }) },
    { name: 'udp behind a truncated destination-options header', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 60, payload: Buffer.from([17]) }) },
    { name: 'udp behind AH', where: 'input', packet: ip6Packet({ src: C, dst: R, proto: 17, ext: [authHeader()], payload: udpDatagram6(C, R, 5000, 9420) }) },
  ]);
  const seen = (name: string): boolean => outcomes.find((o) => o.name === name)!.legacy;
  t.ok(seen('a later fragment before another extension header') && seen('udp later fragment, payload "port" 9400'), 'the kernel lets the first two later fragments through');
  t.notOk(seen('udp later fragment, payload "port" 9401') || seen('udp to 0 #1'), 'then later fragments and port 0 share the spent bucket');
  t.notOk(seen('no next header'), 'and drops "no next header" in a port mode');
  checkOutcomes(t, outcomes, 'ip6tables');
});

// addrtype in ip6tables: the kernel's ipv6_addr_type and IPv6 route lookup, through logd's mirror of the routing state
const ADDRTYPE6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9500 -m addrtype --dst-type LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9501 -m addrtype --dst-type ANYCAST -j DROP
-A INPUT -p udp -m udp --dport 9502 -m addrtype --dst-type MULTICAST -j DROP
-A INPUT -p udp -m udp --dport 9503 -m addrtype --src-type UNREACHABLE -j DROP
-A INPUT -p udp -m udp --dport 9504 -m addrtype --src-type UNSPEC -j DROP
-A INPUT -p udp -m udp --dport 9505 -m addrtype --dst-type LOCAL --limit-iface-in -j DROP
-A INPUT -p udp -m udp --dport 9506 -m addrtype ! --dst-type UNICAST -j DROP
-A INPUT -p udp -m udp --dport 9507 -m addrtype --dst-type UNICAST,LOCAL -j DROP
-A INPUT -p udp -m udp --dport 9508 -m addrtype --dst-type UNICAST,MULTICAST -j DROP
-A FORWARD -p udp -m udp --dport 9510 -m addrtype --src-type UNREACHABLE --limit-iface-in -j DROP
-A FORWARD -p udp -m udp --dport 9511 -m addrtype --dst-type LOCAL --limit-iface-out -j DROP
-A FORWARD -p udp -m udp --dport 9512 -m addrtype --src-type UNREACHABLE -j DROP
COMMIT
`;

t.test('addrtype classifies IPv6 addresses like the kernel, and follows route and address changes', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore', 'nft'])) return;
  prepareState();
  const pair = new DiffPair(6);
  t.teardown(() => pair.destroy());
  const r = pair.load(ADDRTYPE6);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  // until duplicate address detection of the link-local addresses ends, the routers hold packets back (and their
  // routes still change): probe a settled network
  // the router answers neighbour solicitations for its anycast address after a random delay of up to a second
  // (RFC 4861): the clients know it in advance
  for (const topo of [pair.legacy, pair.ours]) nsExecOk(topo.client, 'ip', ['-6', 'neigh', 'replace', 'fd00:1::', 'lladdr', '02:00:00:00:01:01', 'dev', 'c0', 'nud', 'permanent']);
  for (let i = 0; i < 40 && [pair.legacy, pair.ours].some((topo) => [topo.client, topo.router].some((ns) => nsExec(ns, 'ip', ['-6', 'addr', 'show', 'tentative']).stdout.trim() !== '')); i++) sleep(100);
  const u = (name: string, dport: number, dst = R, src = C, where: 'input' | 'forward' = 'input'): ProbeSpec => ({ name, where, packet: udp6Packet(src, dst, 5000, dport) });
  const probes = (tag: string): ProbeSpec[] => [
    u(`${tag}: to the router's address`, 9500), u(`${tag}: to its address on the other device`, 9500, 'fd00:2::1'),
    u(`${tag}: to the new address fd00:1::50`, 9500, 'fd00:1::50'),
    u(`${tag}: to the subnet-router anycast address`, 9501, 'fd00:1::'), u(`${tag}: anycast rule, to a unicast address`, 9501),
    u(`${tag}: to all nodes`, 9502, 'ff02::1'), u(`${tag}: multicast rule, to a unicast address`, 9502),
    u(`${tag}: from a source without a route`, 9503, R, '2001:db8:dead::5'), u(`${tag}: from a source behind an unreachable route`, 9503, R, '2001:db8:beef::5'),
    u(`${tag}: from a routed source`, 9503),
    u(`${tag}: from ::`, 9504, R, '::'), u(`${tag}: unspec rule, from a unicast source`, 9504),
    u(`${tag}: local on the input device`, 9505), u(`${tag}: local on the other device (a bound lookup sees no route)`, 9505, 'fd00:2::1'),
    u(`${tag}: not unicast: all nodes`, 9506, 'ff02::1'), u(`${tag}: not unicast: a unicast address`, 9506),
    u(`${tag}: unicast and local`, 9507), u(`${tag}: unicast, anycast not local`, 9507, 'fd00:1::'),
    u(`${tag}: unicast and multicast at once (never)`, 9508, 'ff02::1'), u(`${tag}: unicast and multicast, a unicast address`, 9508),
    u(`${tag}: forwarded from a source routed via the input device`, 9510, S, C, 'forward'),
    u(`${tag}: forwarded from a source routed via the other device`, 9510, S, 'fd00:2::9', 'forward'),
    u(`${tag}: forwarded, local on the output device`, 9511, S, C, 'forward'),
    u(`${tag}: forwarded from a source without a route`, 9512, S, '2001:db8:dead::5', 'forward'),
    u(`${tag}: forwarded from a routed source`, 9512, S, C, 'forward'),
  ];
  const before = pair.probe(probes('before'));
  checkOutcomes(t, before, 'ip6tables');
  const seen = (o: typeof before, name: string): boolean => o.find((x) => x.name === name)!.legacy;
  t.notOk(seen(before, 'before: to the subnet-router anycast address'), 'the kernel calls the subnet-router address anycast');
  t.ok(seen(before, 'before: local on the other device (a bound lookup sees no route)'), 'and a bound lookup sees only its device');
  // routes and an address appear: the mirror must follow (logd)
  for (const router of [pair.legacy.router, pair.ours.router]) {
    nsExecOk(router, 'ip', ['-6', 'route', 'add', '2001:db8:dead::/48', 'dev', 'r0']);
    nsExecOk(router, 'ip', ['-6', 'route', 'add', 'unreachable', '2001:db8:beef::/48']);
    nsExecOk(router, 'ip', ['-6', 'addr', 'add', 'fd00:1::50/64', 'dev', 'r0', 'nodad']);
  }
  sleep(300);
  const after = pair.probe(probes('after'));
  checkOutcomes(t, after, 'ip6tables');
  t.ok(seen(after, 'after: from a source without a route'), 'a new route makes a source reachable');
  t.notOk(seen(after, 'after: to the new address fd00:1::50'), 'a new address is local');
});
