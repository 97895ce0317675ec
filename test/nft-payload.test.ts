/**
 * nft's payload fields (`ip id`, `ip6 flowlabel`, `tcp window`, `sctp vtag`,
 * ...) through the kernel: nft rules translated to IR, compiled, loaded and
 * run with BPF_PROG_TEST_RUN on crafted packets. Each verdict must be the
 * one the packet's bytes call for (written out here, independently of the
 * field table) and the one the reference interpreter gives. The fields the
 * differential harness cannot vary (it tells probes apart by IP ID and flow
 * label) are proved here; test/diff-nft compares the others with the
 * kernel's nft.
 */
import t from 'tap';
import { compileTable } from '../cgen/program';
import { kernel, loadCompiled } from '../compat/engine';
import { systemNameDb } from '../compat/namedb';
import { ip6Packet, ipPacket, optionsHeader, TCP, tcp6Packet, tcpPacket, udp6Packet, udpPacket } from '../compat/probes';
import { NFPROTO_IPV4, NFPROTO_IPV6, testRunNf } from '../native/bpf';
import { evaluate, viewPacket, viewPacket6 } from '../xlate/eval';
import { baseChainTables, loadNft } from '../xlate/nft';
import { requireKernel } from './helpers/env';

const RULES = `table inet p {
	chain input {
		type filter hook input priority 0; policy accept;
		ip id 4660 drop
		ip id { 100-199, 300 } udp dport 9 drop
		ip frag-off 0x4000 udp dport 10 drop
		ip checksum 0 udp dport 11 drop
		ip ecn ce udp dport 12 drop
		ip6 flowlabel 12345 drop
		ip6 flowlabel > 1000000 udp dport 9 drop
		ip6 ecn ect0 udp dport 12 drop
		ip6 version != 6 drop
		tcp sequence 0xdeadbeef drop
		tcp ackseq 0xffffffff drop
		tcp urgptr != 0 tcp dport 13 drop
		tcp window < 100 tcp dport 14 drop
		udp checksum 0 udp dport 15 drop
		esp spi 0x10000 drop
		ah spi 7 drop
		comp cpi 9 drop
		icmp sequence 5 drop
		icmpv6 sequence 5 drop
	}
}
`;

const C = '10.0.1.2', R = '10.0.1.1', C6 = 'fd00:1::2', R6 = 'fd00:1::1';
const esp = (spi: number): Buffer => { const b = Buffer.alloc(16); b.writeUInt32BE(spi, 0); return b; };
const ah = (spi: number): Buffer => { const b = Buffer.alloc(16); b[1] = 2; b.writeUInt32BE(spi, 4); return b; };

/** [what, family, packet, dropped?] */
const CASES: [string, 4 | 6, Buffer, boolean][] = [
  ['ip id 4660', 4, udpPacket(C, R, 1, 2, { id: 4660 }), true],
  ['ip id 4661', 4, udpPacket(C, R, 1, 2, { id: 4661 }), false],
  ['ip id 150, udp 9 (in the range)', 4, udpPacket(C, R, 1, 9, { id: 150 }), true],
  ['ip id 300, udp 9 (in the set)', 4, udpPacket(C, R, 1, 9, { id: 300 }), true],
  ['ip id 200, udp 9', 4, udpPacket(C, R, 1, 9, { id: 200 }), false],
  ['ip frag-off 0x4000 (DF), udp 10', 4, udpPacket(C, R, 1, 10, { dontFragment: true }), true],
  ['no DF, udp 10', 4, udpPacket(C, R, 1, 10), false],
  ['ip ecn ce, udp 12', 4, udpPacket(C, R, 1, 12, { tos: 0x03 }), true],
  ['ip ecn ect0, udp 12', 4, udpPacket(C, R, 1, 12, { tos: 0x02 }), false],
  ['ip6 flowlabel 12345', 6, udp6Packet(C6, R6, 1, 2, { flowLabel: 12345 }), true],
  ['ip6 flowlabel 12344', 6, udp6Packet(C6, R6, 1, 2, { flowLabel: 12344 }), false],
  ['ip6 flowlabel 0xfffff (> 1000000), udp 9', 6, udp6Packet(C6, R6, 1, 9, { flowLabel: 0xfffff }), true],
  ['ip6 flowlabel 999999, udp 9', 6, udp6Packet(C6, R6, 1, 9, { flowLabel: 999999 }), false],
  ['tcp sequence 0xdeadbeef', 4, tcpPacket(C, R, { sport: 1, dport: 2, flags: TCP.ACK, seq: 0xdeadbeef }), true],
  ['tcp sequence 0xdeadbeee', 4, tcpPacket(C, R, { sport: 1, dport: 2, flags: TCP.ACK, seq: 0xdeadbeee }), false],
  ['tcp ackseq 0xffffffff (IPv6)', 6, tcp6Packet(C6, R6, { sport: 1, dport: 2, flags: TCP.ACK, ack: 0xffffffff }), true],
  ['tcp ackseq 0xffffffff behind hop-by-hop options', 6, tcp6Packet(C6, R6, { sport: 1, dport: 2, flags: TCP.ACK, ack: 0xffffffff }, { ext: [optionsHeader(0)] }), true],
  ['tcp urgptr 7, tcp 13', 4, tcpPacket(C, R, { sport: 1, dport: 13, flags: TCP.URG, urg: 7 }), true],
  ['tcp urgptr 0, tcp 13', 4, tcpPacket(C, R, { sport: 1, dport: 13, flags: TCP.ACK }), false],
  ['tcp window 99, tcp 14', 4, tcpPacket(C, R, { sport: 1, dport: 14, flags: TCP.ACK, window: 99 }), true],
  ['tcp window 100, tcp 14', 4, tcpPacket(C, R, { sport: 1, dport: 14, flags: TCP.ACK, window: 100 }), false],
  ['esp spi 0x10000', 4, ipPacket({ src: C, dst: R, proto: 50, payload: esp(0x10000) }), true],
  ['esp spi 0x10001', 4, ipPacket({ src: C, dst: R, proto: 50, payload: esp(0x10001) }), false],
  ['esp cut short (no match)', 4, ipPacket({ src: C, dst: R, proto: 50, payload: Buffer.from([0, 1]) }), false],
  // IPv6: the kernel's nft stops its header walk at AH (test/diff-nft: the kernel's nft matches it)
  ['ah spi 7 (IPv6)', 6, ip6Packet({ src: C6, dst: R6, proto: 51, payload: ah(7) }), true],
  ['ah spi 7 (IPv4)', 4, ipPacket({ src: C, dst: R, proto: 51, payload: ah(7) }), true],
  ['icmp sequence 5 (echo request)', 4, ipPacket({ src: C, dst: R, proto: 1, payload: Buffer.from([8, 0, 0, 0, 0, 1, 0, 5]) }), true],
  ['icmp "sequence" 5 (a redirect: not an echo)', 4, ipPacket({ src: C, dst: R, proto: 1, payload: Buffer.from([5, 0, 0, 0, 0, 1, 0, 5, ...Array(28).fill(0)]) }), false],
  ['icmpv6 sequence 5 (echo reply)', 6, ip6Packet({ src: C6, dst: R6, proto: 58, payload: Buffer.from([129, 0, 0, 0, 0, 1, 0, 5]) }), true],
  ['an IPv4 later fragment: its payload read where the transport header would be (sequence)', 4, ipPacket({ src: C, dst: R, proto: 6, fragOff: 3, payload: Buffer.from([0, 1, 0, 2, 0xde, 0xad, 0xbe, 0xef, ...Array(12).fill(0)]) }), true],
];

t.test("payload fields: the verdicts the packets' bytes call for, in the kernel", async (t) => {
  if (!requireKernel(t)) return;
  const rs = loadNft(RULES, 'payload.nft', { db: systemNameDb });
  const units = baseChainTables(rs);
  const k = kernel();
  const progs = new Map<4 | 6, { fd: number; table: (typeof units)[number]['ir']; close: () => void }>();
  for (const u of units) {
    const compiled = compileTable(u.ir, k, { hooks: ['INPUT'], nft: true });
    const loaded = loadCompiled(compiled, u.ir);
    progs.set(u.family, { fd: [...loaded.progFds.values()][0]!, table: u.ir, close: () => loaded.close() });
  }
  t.teardown(() => { for (const p of progs.values()) p.close(); });
  for (const [what, family, pkt, dropped] of CASES) {
    const p = progs.get(family)!;
    const got = testRunNf(p.fd, pkt, 1, family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4).retval === 1 ? 'ACCEPT' : 'DROP';
    const view = family === 6 ? viewPacket6(pkt, { in: 'lo' }, 'INVALID', 16, true) : viewPacket(pkt, { in: 'lo' });
    const model = evaluate(p.table, 'INPUT', view).verdict;
    t.equal(got, dropped ? 'DROP' : 'ACCEPT', `${what}: ${dropped ? 'dropped' : 'accepted'}`);
    t.equal(model, got, `${what}: the reference interpreter agrees`);
  }
});
