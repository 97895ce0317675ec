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

  // iptables: the conntrack match of an IPv4 table turns on IPv4's conntrack alone
  const v4 = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n';
  nsExecOk(L, 'iptables-legacy-restore', [], v4);
  nsExecOk(B, path.join(BIN, 'iptables-restore'), [], v4);
  t.equal(tables(), 'table ip bpftables\n', 'bpftables holds IPv4 conntrack only');
  checkOutcomes(t, pair.probe(fragments4('10.0.1.2', 'iptables, IPv4 ctstate', false), 4));
  checkOutcomes(t, pair.probe(fragments6('fd00:1::2', 'iptables, IPv4 ctstate', 0x100, true), 6));
  nsExecOk(L, 'iptables-legacy-restore', [], '*filter\nCOMMIT\n');
  nsExecOk(B, path.join(BIN, 'bpftables'), ['flush']);
  t.equal(tables(), '', 'flush releases it');

  // nft: a ct expression in a chain no base chain reaches still holds its table's family
  const unreached = 'table ip t {\n\tchain unused {\n\t\tct state new counter\n\t}\n\tchain through {\n\t\ttype filter hook forward priority 0; policy accept;\n\t}\n}\n';
  nsExecOk(L, 'nft', ['-f', '-'], unreached);
  nsExecOk(B, path.join(BIN, 'nft'), ['-f', '-'], unreached);
  t.equal(tables(), 'table ip bpftables\n', 'an ip table\'s ct expression, reached or not: IPv4 conntrack');
  checkOutcomes(t, pair.probe(fragments4('198.51.100.7', 'nft, ct in an unreached chain of an ip table', false), 4), 'nft');
  checkOutcomes(t, pair.probe(fragments6('2001:db8::7', 'nft, ct in an unreached chain of an ip table', 0x200, true), 6), 'nft');

  // an inet table's ct expression: both families
  const inet = 'flush ruleset\ntable inet t {\n\tchain through {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state invalid counter\n\t}\n}\n';
  nsExecOk(L, 'nft', ['-f', '-'], inet);
  nsExecOk(B, path.join(BIN, 'nft'), ['-f', '-'], inet);
  t.equal(tables(), 'table ip bpftables\ntable ip6 bpftables\n', 'an inet table\'s ct expression: both families');
  checkOutcomes(t, pair.probe(fragments4('198.51.100.8', 'nft, ct in an inet table', false), 4), 'nft');
  checkOutcomes(t, pair.probe(fragments6('2001:db8::8', 'nft, ct in an inet table', 0x300, false), 6), 'nft');

  nsExecOk(B, path.join(BIN, 'nft'), ['flush', 'ruleset']);
  t.equal(tables(), '', 'flush ruleset releases both');
});
