/**
 * The prologue decodes the transport header, the devices' names and the
 * conntrack state only for tables whose rules read them (cgen/program.ts
 * readsTransport, xlate/ir.ts tableFacts): each kind of match that does, alone
 * in a table (so nothing else turns the decoding on), gives the reference
 * interpreter's verdicts and counters; and a table without one still
 * filters by addresses, protocol and length.
 */
import t from 'tap';
import { icmpPacket, TCP, tcpPacket, udpPacket } from '../compat/probes';
import { checkSeed } from './helpers/verdict-model';
import { prepareState, requireKernel } from './helpers/env';

const RULES: Record<string, string> = {
  tcp: '-p tcp -m tcp --dport 22 -j DROP',
  'tcp flags': '-p tcp -m tcp --tcp-flags SYN,ACK SYN -j DROP',
  udp: '-p udp -m udp --sport 53 -j DROP',
  icmp: '-p icmp -m icmp --icmp-type echo-request -j DROP',
  multiport: '-p tcp -m multiport --dports 22,80 -j DROP',
  tcpmss: '-p tcp -m tcpmss --mss 1000:1500 -j DROP',
  ecn: '-p tcp -m ecn --ecn-tcp-cwr -j DROP',
  'no transport match': '-s 10.0.0.0/8 -p tcp -m length --length 40:60 -j DROP',
  // the other parts decoded on demand: device names and the conntrack state
  'an interface': '! -i eth9 -p udp -j DROP',
  conntrack: '-m conntrack --ctstate INVALID -p icmp -j DROP',
};

let n = 0;
function packet(): Buffer {
  n++;
  const src = n % 3 ? '10.1.2.3' : '192.0.2.4';
  switch (n % 6) {
    case 0: return tcpPacket(src, '10.0.0.1', { sport: 1000 + n, dport: [22, 23, 80][n % 3]!, flags: n % 4 ? TCP.SYN : TCP.SYN | TCP.ACK });
    case 1: return tcpPacket(src, '10.0.0.1', { sport: 53, dport: 22, flags: 0x80 | TCP.ACK, options: Buffer.from([2, 4, 0x05, n % 2 ? 0xb4 : 0x10]) });
    case 2: return udpPacket(src, '10.0.0.1', n % 2 ? 53 : 54, 9);
    case 3: return icmpPacket(src, '10.0.0.1', n % 2 ? 8 : 0, 0);
    default: return tcpPacket(src, '10.0.0.1', { sport: 7, dport: 80, flags: TCP.ACK });
  }
}

for (const [name, rule] of Object.entries(RULES)) {
  t.test(`${name} alone in a table`, async (t) => {
    if (!requireKernel(t)) return;
    prepareState();
    checkSeed(t, { seed: 1, family: 4, perHook: 300, packet, text: `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT ${rule}\nCOMMIT\n` });
  });
}
