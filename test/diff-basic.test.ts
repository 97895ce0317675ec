import t from 'tap';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { prepareState, requireKernel } from './helpers/env';
import { icmpMessage, icmpPacket, ipPacket, TCP, tcpPacket, udpDatagram, udpPacket } from '../compat/probes';

const RULES = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:IN_TCP - [0:0]
:IN_UDP - [0:0]
:IN_ICMP - [0:0]
:FWD_L1 - [0:0]
:FWD_L2 - [0:0]
:FWD_L3 - [0:0]
:OUT_CHK - [0:0]
-A INPUT -s 192.0.2.0/24 -j DROP
-A INPUT -m comment --comment "count everything from the client"
-A INPUT -p tcp -j IN_TCP
-A INPUT -p udp -j IN_UDP
-A INPUT -p icmp -j IN_ICMP
-A INPUT -p gre -j ACCEPT
-A INPUT -s 198.51.100.0/255.255.255.0 -i r0 -p 50 -j ACCEPT
-A IN_TCP -p tcp -m tcp --dport 22 -j ACCEPT
-A IN_TCP -p tcp -m tcp --sport 1024:2047 --dport 80 -j ACCEPT
-A IN_TCP -p tcp -m tcp ! --dport 0:1023 --tcp-flags SYN,ACK SYN -j ACCEPT
-A IN_TCP -p tcp -m multiport --dports 800,843,900:910 -j ACCEPT
-A IN_TCP -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK RST -m length --length 0:40 -j ACCEPT
-A IN_UDP -p udp -m udp --dport 53 -j ACCEPT
-A IN_UDP -p udp -m multiport ! --sports 1:1023 -m udp --dport 500:510 -j ACCEPT
-A IN_UDP -s 10.0.1.0/24 -j RETURN
-A IN_UDP -j ACCEPT
-A IN_ICMP -p icmp -m icmp --icmp-type echo-request -m ttl --ttl-gt 10 -j ACCEPT
-A IN_ICMP -p icmp -m icmp --icmp-type 3/4 -j ACCEPT
-A IN_ICMP -p icmp -m icmp ! --icmp-type 11 -m ttl --ttl-eq 5 -j ACCEPT
-A IN_ICMP -p icmp -m iprange --src-range 10.0.1.1-10.0.1.3 -m icmp --icmp-type 13 -j ACCEPT
-A FORWARD -i r1 -j ACCEPT
-A FORWARD -f -j ACCEPT
-A FORWARD ! -i r+ -j DROP
-A FORWARD -i r0 -o r1 -j FWD_L1
-A FORWARD -p udp -m udp --dport 7 -j ACCEPT
-A FWD_L1 -s 10.0.1.0/24 -d 10.0.2.2 -j FWD_L2
-A FWD_L1 -p tcp -m tcp --dport 443 -j ACCEPT
-A FWD_L2 ! -s 10.0.1.2 -j RETURN
-A FWD_L2 -p tcp -g FWD_L3
-A FWD_L2 -p udp -m udp --dport 9 -j ACCEPT
-A FWD_L3 -p tcp -m tcp --dport 25 -j DROP
-A FWD_L3 -p tcp -m tcp --dport 20:30 -j ACCEPT
-A FWD_L3 -p tcp -m multiport --ports 8000 -j ACCEPT
-A OUTPUT -o r0 -j OUT_CHK
-A OUT_CHK -p udp -m udp --sport 111 -j DROP
-A OUT_CHK -p icmp -m length ! --length 0:100 -j DROP
-A OUT_CHK -m iprange ! --dst-range 10.0.1.0-10.0.1.255 -j DROP
COMMIT
`;

const C = '10.0.1.2', R = '10.0.1.1', S = '10.0.2.2';
const syn = (sport: number, dport: number, src = C, dst = R): Buffer => tcpPacket(src, dst, { sport, dport, flags: TCP.SYN });

const PROBES: ProbeSpec[] = [
  { name: 'in: blocked source net', where: 'input', packet: syn(1000, 22, '192.0.2.7'), expect: false },
  { name: 'in: ssh', where: 'input', packet: syn(40000, 22), expect: true },
  { name: 'in: port 80 from low sport', where: 'input', packet: tcpPacket(C, R, { sport: 1500, dport: 80, flags: TCP.ACK }), expect: true },
  { name: 'in: port 80 from high sport', where: 'input', packet: tcpPacket(C, R, { sport: 3000, dport: 80, flags: TCP.ACK }), expect: false },
  { name: 'in: SYN to high port', where: 'input', packet: syn(40000, 5555), expect: true },
  { name: 'in: SYN/ACK to high port', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 5555, flags: TCP.SYN | TCP.ACK }), expect: false },
  { name: 'in: multiport hit 843', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 843, flags: TCP.ACK }), expect: true },
  { name: 'in: multiport range 905', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 905, flags: TCP.ACK }), expect: true },
  { name: 'in: multiport miss 911', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 911, flags: TCP.ACK }), expect: false },
  { name: 'in: bare RST, short', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 99, flags: TCP.RST }), expect: true },
  { name: 'in: RST with payload', where: 'input', packet: tcpPacket(C, R, { sport: 4, dport: 99, flags: TCP.RST, payload: Buffer.alloc(30) }), expect: false },
  { name: 'in: truncated TCP header', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 6, payload: Buffer.from([0, 22, 0, 22, 1, 2]) }), expect: false },
  { name: 'in: dns', where: 'input', packet: udpPacket(C, R, 5353, 53), expect: true },
  { name: 'in: udp 505 from high port', where: 'input', packet: udpPacket(C, R, 2000, 505), expect: true },
  { name: 'in: udp 505 from low port', where: 'input', packet: udpPacket(C, R, 100, 505), expect: false },
  { name: 'in: udp from client net returns to policy', where: 'input', packet: udpPacket(C, R, 2000, 9999), expect: false },
  { name: 'in: udp from elsewhere accepted', where: 'input', packet: udpPacket('203.0.113.9', R, 2000, 9999), expect: true },
  { name: 'in: ping ttl 64', where: 'input', packet: icmpPacket(C, R, 8, 0), expect: true },
  { name: 'in: ping ttl 5 matches ttl-eq', where: 'input', packet: icmpPacket(C, R, 8, 0, { ttl: 5 }), expect: true },
  { name: 'in: ping ttl 9', where: 'input', packet: icmpPacket(C, R, 8, 0, { ttl: 9 }), expect: false },
  { name: 'in: frag needed', where: 'input', packet: icmpPacket(C, R, 3, 4), expect: true },
  { name: 'in: port unreachable', where: 'input', packet: icmpPacket(C, R, 3, 3), expect: false },
  { name: 'in: time exceeded ttl 5', where: 'input', packet: icmpPacket(C, R, 11, 0, { ttl: 5 }), expect: false },
  { name: 'in: timestamp from iprange', where: 'input', packet: icmpPacket(C, R, 13, 0), expect: true },
  { name: 'in: timestamp outside iprange', where: 'input', packet: icmpPacket('10.0.1.9', R, 13, 0), expect: false },
  { name: 'in: truncated icmp', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: Buffer.from([8, 0, 0, 0]) }), expect: false },
  { name: 'in: ssh with IP options (IHL 6)', where: 'input', packet: tcpPacket(C, R, { sport: 40000, dport: 22, flags: TCP.SYN }, { options: Buffer.from([1, 1, 1, 0]) }), expect: true },
  { name: 'in: telnet with IP options (IHL 7)', where: 'input', packet: tcpPacket(C, R, { sport: 40000, dport: 23, flags: TCP.SYN }, { options: Buffer.alloc(8, 1) }), expect: false },
  { name: 'in: dns with IP options', where: 'input', packet: udpPacket(C, R, 5353, 53, { options: Buffer.from([1, 1, 1, 0]) }), expect: true },
  { name: 'in: frag-needed with IP options', where: 'input', packet: icmpPacket(C, R, 3, 4, { options: Buffer.from([1, 1, 1, 0]) }), expect: true },
  { name: 'in: zero-length udp payload to 505', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 17, payload: udpDatagram(C, R, 2000, 505, Buffer.alloc(0)) }), expect: true },
  { name: 'in: gre', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 47, payload: Buffer.alloc(8) }), expect: true },
  { name: 'in: esp from masked net', where: 'input', packet: ipPacket({ src: '198.51.100.3', dst: R, proto: 50, payload: Buffer.alloc(8) }), expect: true },
  { name: 'in: esp from elsewhere', where: 'input', packet: ipPacket({ src: '198.51.101.3', dst: R, proto: 50, payload: Buffer.alloc(8) }), expect: false },
  { name: 'fwd: tcp 25 dropped in goto chain', where: 'forward', packet: syn(1000, 25, C, S), expect: false },
  { name: 'fwd: tcp 22 accepted in goto chain', where: 'forward', packet: syn(1000, 22, C, S), expect: true },
  { name: 'fwd: tcp 8000 via --ports', where: 'forward', packet: syn(1000, 8000, C, S), expect: true },
  { name: 'fwd: tcp 443 falls off the goto chain back into FWD_L1', where: 'forward', packet: syn(1000, 443, C, S), expect: true },
  { name: 'fwd: tcp 444 falls through every chain to the policy', where: 'forward', packet: syn(1000, 444, C, S), expect: false },
  { name: 'fwd: spoofed source returns from L2, 443 accepted in L1', where: 'forward', packet: syn(1000, 443, '10.0.1.77', S), expect: true },
  { name: 'fwd: udp 9', where: 'forward', packet: udpPacket(C, S, 1000, 9), expect: true },
  { name: 'fwd: udp 7 after chain', where: 'forward', packet: udpPacket(C, S, 1000, 7), expect: true },
  { name: 'fwd: udp 8 dropped by policy', where: 'forward', packet: udpPacket(C, S, 1000, 8), expect: false },
  { name: 'fwd: non-first fragment', where: 'forward', packet: ipPacket({ src: C, dst: S, proto: 17, fragOff: 10, payload: Buffer.alloc(16) }), expect: true },
  { name: 'fwd: evil tcp fragment offset 1', where: 'forward', packet: ipPacket({ src: C, dst: S, proto: 6, fragOff: 1, payload: Buffer.alloc(16) }), expect: true },
  { name: 'in: truncated UDP header (hotdrop)', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 17, payload: Buffer.from([0, 53, 0, 53]) }), expect: false },
  { name: 'out: udp from 111', where: 'output', packet: udpPacket(R, C, 111, 2000), expect: false },
  { name: 'out: udp from 112', where: 'output', packet: udpPacket(R, C, 112, 2000), expect: true },
  { name: 'out: big icmp', where: 'output', packet: ipPacket({ src: R, dst: C, proto: 1, payload: icmpMessage(0, 0, undefined, Buffer.alloc(200)) }), expect: false },
  { name: 'out: small icmp', where: 'output', packet: icmpPacket(R, C, 0, 0), expect: true },
  { name: 'out: to another net', where: 'output', packet: udpPacket(R, '10.0.2.2', 1000, 2000), expect: false },
];

t.test('bpftables filters like iptables-legacy (crafted packets over veth)', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  const r = pair.load(RULES);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  const outcomes = pair.probe(PROBES);
  checkOutcomes(t, outcomes);
});
