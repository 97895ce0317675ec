/**
 * Connection tracking comes with defragmentation: once a family's
 * conntrack is on in a namespace, its fragments are reassembled before the
 * filter hooks (a lone fragment waits for the rest and is never forwarded).
 * bpftables must turn it on for exactly the families the kernel's tools
 * would: iptables' conntrack match for its own family only, nft for the
 * families of every table with a ct expression, in any chain, reached from
 * a base chain or not. Lone fragments through both routers show it.
 */
import path from 'node:path';
import t from 'tap';
import { nsExec, nsExecOk } from '../compat/lab';
import { fragmentHeader, ip6Packet, ipPacket, udpDatagram, udpDatagram6 } from '../compat/probes';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

const S = '10.0.2.2', S6 = 'fd00:2::2';

/** A first fragment (more to come) and a later one (the last), each alone, of a UDP datagram from `src`. */
function fragments4(src: string, tag: string, expect: boolean): ProbeSpec[] {
  const body = udpDatagram(src, S, 5000, 9000, Buffer.alloc(32));
  return [
    { name: `${tag}: an IPv4 first fragment alone`, where: 'forward', packet: ipPacket({ src, dst: S, proto: 17, moreFragments: true, payload: body.subarray(0, 24) }), expect },
    { name: `${tag}: an IPv4 later fragment alone`, where: 'forward', packet: ipPacket({ src, dst: S, proto: 17, fragOff: 3, payload: body.subarray(24) }), expect },
  ];
}
function fragments6(src: string, tag: string, id: number, expect: boolean): ProbeSpec[] {
  const body = udpDatagram6(src, S6, 5000, 9000, Buffer.alloc(32));
  return [
    { name: `${tag}: an IPv6 first fragment alone`, where: 'forward', packet: ip6Packet({ src, dst: S6, proto: 17, ext: [fragmentHeader(0, true, id)], payload: body.subarray(0, 24) }), expect },
    { name: `${tag}: an IPv6 later fragment alone`, where: 'forward', packet: ip6Packet({ src, dst: S6, proto: 17, ext: [fragmentHeader(3, false, id + 1)], payload: body.subarray(24) }), expect },
  ];
}

t.test("each family's fragments are reassembled exactly when the kernel's tools would have them reassembled", async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore', 'nft'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  const L = pair.legacy.router, B = pair.ours.router;
  const tables = (): string => nsExec(B, 'nft', ['list', 'tables']).stdout;

  /**
   * `text` loaded by the kernel's tool and by ours: the conntrack references we then hold, and each family's
   * lone fragments (from sources of their own, so no earlier stage's queue takes them) through both routers
   */
  const stage = (s: { tool: 'iptables' | 'nft'; text: string; tables: string; why: string; tag: string; from: [string, string, number]; forwarded: [boolean, boolean] }): void => {
    const [kernel, ours] = s.tool === 'nft' ? [['nft', '-f', '-'], [path.join(BIN, 'nft'), '-f', '-']] : [['iptables-legacy-restore'], [path.join(BIN, 'iptables-restore')]];
    nsExecOk(L, kernel[0]!, kernel.slice(1), s.text);
    nsExecOk(B, ours[0]!, ours.slice(1), s.text);
    t.equal(tables(), s.tables, s.why);
    const [src4, src6, id] = s.from;
    checkOutcomes(t, pair.probe(fragments4(src4, s.tag, s.forwarded[0]), 4), s.tool);
    checkOutcomes(t, pair.probe(fragments6(src6, s.tag, id, s.forwarded[1]), 6), s.tool);
  };

  // iptables: the conntrack match of an IPv4 table turns on IPv4's conntrack alone
  stage({
    tool: 'iptables', text: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n',
    tables: 'table ip bpftables\n', why: 'bpftables holds IPv4 conntrack only', tag: 'iptables, IPv4 ctstate', from: ['10.0.1.2', 'fd00:1::2', 0x100], forwarded: [false, true],
  });
  nsExecOk(L, 'iptables-legacy-restore', [], '*filter\nCOMMIT\n');
  nsExecOk(B, path.join(BIN, 'bpftables'), ['flush']);
  t.equal(tables(), '', 'flush releases it');

  // nft: a ct expression in a chain no base chain reaches still holds its table's family
  stage({
    tool: 'nft', text: 'table ip t {\n\tchain unused {\n\t\tct state new counter\n\t}\n\tchain through {\n\t\ttype filter hook forward priority 0; policy accept;\n\t}\n}\n',
    tables: 'table ip bpftables\n', why: 'an ip table\'s ct expression, reached or not: IPv4 conntrack', tag: 'nft, ct in an unreached chain of an ip table',
    from: ['198.51.100.7', '2001:db8::7', 0x200], forwarded: [false, true],
  });
  // an inet table's ct expression: both families
  stage({
    tool: 'nft', text: 'flush ruleset\ntable inet t {\n\tchain through {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state invalid counter\n\t}\n}\n',
    tables: 'table ip bpftables\ntable ip6 bpftables\n', why: 'an inet table\'s ct expression: both families', tag: 'nft, ct in an inet table',
    from: ['198.51.100.8', '2001:db8::8', 0x300], forwarded: [false, false],
  });

  nsExecOk(B, path.join(BIN, 'nft'), ['flush', 'ruleset']);
  t.equal(tables(), '', 'flush ruleset releases both');
});
