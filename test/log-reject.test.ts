/**
 * LOG and REJECT through the kernel, beside iptables-legacy: the same
 * crafted packets through two identical topologies; the kernel log must hold
 * the same LOG lines (ours written by bpftables logd), and the client must
 * receive the same answers to rejected packets on the wire (TCP resets and
 * ICMP errors equal byte for byte, apart from the IP ID the kernel picks
 * and the header checksum that covers it).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { nsExec, nsExecOk, RawReceiver, sendRaw, sendRaw6, sleep, sysctl, type Topology } from '../compat/lab';
import { csum, fixIpChecksum, icmp6Packet, icmpMessage, icmpPacket, ip6Packet, ipPacket, optionsHeader, fragmentHeader, tcp6Packet, tcpPacket, udp6Packet, udpDatagram6, udpPacket } from '../compat/probes';
import { DiffPair } from './helpers/differential';
import { EVENTS_BYTES, RECORD_SIZE } from '../cgen/events';
import { BIN, prepareState, requireKernel } from './helpers/env';

const C = '10.0.1.2', R = '10.0.1.1', S = '10.0.2.2';
const C6 = 'fd00:1::2', R6 = 'fd00:1::1', S6 = 'fd00:2::2';
const NF_LOG_ALL_NETNS = '/proc/sys/net/netfilter/nf_log_all_netns';

/** Kernel log lines (without timestamps) that start with `tag`, in order. */
function kernelLog(tag: string): string[] {
  const r = spawnSync('dmesg', ['--notime'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout.split('\n').map((l) => l.trimStart()).filter((l) => l.startsWith(tag));
}

/** Load `rules` with iptables-legacy in one router and bpftables in the other, `@` replaced by each engine's tag. */
function loadBoth(pair: DiffPair, rules: string, tags: { legacy: string; ours: string }): number | null {
  const ip = pair.family === 6 ? 'ip6tables' : 'iptables';
  nsExecOk(pair.legacy.router, `${ip}-legacy-restore`, [], rules.replaceAll('@', tags.legacy));
  return nsExec(pair.ours.router, path.join(BIN, `${ip}-restore`), [], rules.replaceAll('@', tags.ours)).status;
}

interface Probe { name: string; where: 'input' | 'forward' | 'output'; packet: Buffer }

function send(topo: Topology, family: 4 | 6, p: Probe): void {
  const from = p.where === 'output' ? topo.router : topo.client;
  if (family === 6) sendRaw6(from, p.packet); else sendRaw(from, p.packet);
}

function withLogAllNetns(t: Test): void {
  const before = fs.readFileSync(NF_LOG_ALL_NETNS, 'utf8').trim();
  fs.writeFileSync(NF_LOG_ALL_NETNS, '1');
  t.teardown(() => fs.writeFileSync(NF_LOG_ALL_NETNS, before));
}

/** Send each probe through both topologies; the LOG lines each produced, by engine. */
function logLines(t: Test, pair: DiffPair, probes: Probe[], tags: { legacy: string; ours: string }): { legacy: string[]; ours: string[] } {
  for (const [topo] of [[pair.legacy], [pair.ours]] as const) {
    probes.forEach((p, i) => {
      const pkt = Buffer.from(p.packet);
      if (pair.family === 4) { pkt.writeUInt16BE(0x6000 + i, 4); fixIpChecksum(pkt); }
      send(topo, pair.family, { ...p, packet: pkt });
    });
  }
  sleep(700);
  const strip = (tag: string) => (l: string): string => l.slice(tag.length);
  // the routers' own neighbour discovery and multicast listener traffic is not among the probes
  const probe = (l: string): boolean => !/PROTO=ICMPv6 TYPE=1(3[0-9]|4[0-3]) /.test(l);
  return { legacy: kernelLog(tags.legacy).map(strip(tags.legacy)).filter(probe), ours: kernelLog(tags.ours).map(strip(tags.ours)).filter(probe) };
}

/**
 * Load `rules` (with each engine's prefix tag for @) in a fresh twin topology, send `probes` through both,
 * and compare the LOG lines line by line; `expect` is how many lines the kernel must write.
 */
async function compareLogLines(t: Test, family: 4 | 6, rules: string, probes: Probe[], expect: number, why = ''): Promise<void> {
  prepareState();
  withLogAllNetns(t);
  const pair = new DiffPair(family);
  t.teardown(() => pair.destroy());
  const tags = tagsFor();
  t.equal(loadBoth(pair, rules, tags), 0, 'our restore succeeded');
  const lines = logLines(t, pair, probes, tags);
  t.equal(lines.legacy.length, expect, `the kernel logged ${expect} lines${why}`);
  if (process.env.DEBUG_LOG) fs.writeFileSync(`${process.env.DEBUG_LOG}.${family}`, JSON.stringify(lines, null, 1));
  t.same(lines.ours, lines.legacy, 'the same lines, in the same order');
  for (let i = 0; i < Math.max(lines.ours.length, lines.legacy.length); i++) {
    if (lines.ours[i] !== lines.legacy[i]) t.equal(lines.ours[i], lines.legacy[i], `line ${i + 1}`);
  }
}

/** A named namespace's inode (/run/netns entries are bind mounts of the namespaces' nsfs files). */
const netnsInode = (ns: string): number => fs.statSync(`/run/netns/${ns}`).ino;
/** The logd processes serving the namespace with inode `ino`. */
const logdsOf = (ino: number): number[] => fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
  try { return fs.statSync(`/proc/${pid}/ns/net`).ino === ino && fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('logd'); } catch { return false; }
});

const tagsFor = (): { legacy: string; ours: string } => {
  const run = crypto.randomBytes(3).toString('hex');
  return { legacy: `L${run}`, ours: `B${run}` };
};

const IP_OPTIONS = Buffer.from([0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01]); // record route (one slot), NOP
const SYN_OPTIONS = Buffer.from([0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07]);

t.test('LOG writes the kernel LOG target\'s lines (IPv4)', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore', 'dmesg'])) return;
  const rules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7100 -j LOG --log-prefix "@a " --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid
-A INPUT -p tcp -m tcp --dport 7100 -j DROP
-A INPUT -j LOG --log-prefix "@b " --log-level 6
-A INPUT -j DROP
-A FORWARD -j LOG --log-prefix "@c " --log-macdecode --log-ip-options
-A FORWARD -j DROP
-A OUTPUT -p udp -m udp --dport 7400 -j LOG --log-prefix "@d " --log-uid
-A OUTPUT -p udp -m udp --dport 7400 -j DROP
COMMIT
`;
  const quoted = udpPacket(R, C, 5353, 53, { id: 77, dontFragment: true });
  const probes: Probe[] = [
    { name: 'SYN with options', where: 'input', packet: tcpPacket(C, R, { sport: 40000, dport: 7100, flags: 0x02, seq: 123456789, options: SYN_OPTIONS }, { dontFragment: true }) },
    { name: 'ACK with payload, IP options, TOS', where: 'input', packet: tcpPacket(C, R, { sport: 40001, dport: 7100, flags: 0x18, seq: 5, ack: 99, payload: Buffer.from('hello') }, { options: IP_OPTIONS, tos: 0xb8 }) },
    { name: 'all TCP flags, urgent pointer', where: 'input', packet: tcpPacket(C, R, { sport: 40002, dport: 7100, flags: 0xff, urg: 7, window: 512 }) },
    { name: 'UDP', where: 'input', packet: udpPacket(C, R, 5000, 53) },
    { name: 'ICMP echo', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(8, 0, Buffer.from([0x12, 0x34, 0, 9])) }) },
    { name: 'ICMP port unreachable quoting UDP', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(3, 3, Buffer.alloc(4), quoted) }) },
    { name: 'ICMP fragmentation needed', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(3, 4, Buffer.from([0, 0, 0x05, 0xdc]), quoted) }) },
    { name: 'ICMP redirect', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(5, 1, Buffer.from([10, 0, 1, 9]), quoted) }) },
    { name: 'ICMP parameter problem', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(12, 0, Buffer.from([20, 0, 0, 0]), quoted) }) },
    { name: 'ICMP timestamp cut short', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: icmpMessage(13, 0, Buffer.alloc(4), Buffer.alloc(2)) }) },
    { name: 'ICMP header cut short', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, payload: Buffer.from([8, 0, 0]) }) },
    { name: 'TCP header cut short', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 6, payload: Buffer.alloc(10) }) },
    { name: 'UDP fragment, not the first', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 17, fragOff: 3, payload: Buffer.alloc(16) }) },
    { name: 'first fragment of a TCP segment', where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 7101, flags: 0x10 }, { moreFragments: true }) },
    { name: 'GRE', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 47, payload: Buffer.alloc(8) }) },
    { name: 'AH', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 51, payload: Buffer.from([17, 4, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, ...Array(12).fill(0)]) }) },
    { name: 'ESP', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 50, payload: Buffer.from([0xca, 0xfe, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4]) }) },
    { name: 'ESP cut short', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 50, payload: Buffer.from([0xca, 0xfe]) }) },
    { name: 'UDP-Lite', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 136, payload: Buffer.from([0x13, 0x88, 0, 53, 0, 8, 0, 0]) }) },
    { name: 'forwarded UDP (MAC decoded, IP options)', where: 'forward', packet: udpPacket(C, S, 5000, 7300, { options: IP_OPTIONS }) },
    { name: 'forwarded TCP', where: 'forward', packet: tcpPacket(C, S, { sport: 1000, dport: 80, flags: 0x02 }) },
    { name: 'sent by the router (owner shown)', where: 'output', packet: udpPacket(R, C, 5000, 7400) },
  ];
  // a truncated TCP header is dropped by rule a's tcp match; fragments are reassembled before INPUT
  await compareLogLines(t, 4, rules, probes, probes.length - 3, ' (every probe that reached a LOG rule)');
});

t.test('LOG writes the kernel LOG target\'s lines (IPv6)', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore', 'dmesg'])) return;
  const rules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7100 -j LOG --log-prefix "@a " --log-tcp-sequence --log-tcp-options --log-ip-options
-A INPUT -p tcp -m tcp --dport 7100 -j DROP
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
-A INPUT -j LOG --log-prefix "@b " --log-ip-options
-A INPUT -j DROP
-A FORWARD -j LOG --log-prefix "@c " --log-level 7
-A FORWARD -j DROP
COMMIT
`;
  const quoted = udp6Packet(R6, C6, 5353, 53);
  // type, code, (unchecked) checksum, the type's 4 bytes and the quoted packet
  const icmpErr = (type: number, code: number, rest: Buffer): Buffer =>
    ip6Packet({ src: C6, dst: R6, proto: 58, payload: Buffer.concat([Buffer.from([type, code, 0, 0]), rest, quoted]) });
  const probes: Probe[] = [
    { name: 'SYN with options', where: 'input', packet: tcp6Packet(C6, R6, { sport: 40000, dport: 7100, flags: 0x02, seq: 42, options: SYN_OPTIONS }) },
    { name: 'UDP with a traffic class and flow label', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 17, flowLabel: 0xabcde, payload: udp6Packet(C6, R6, 5000, 53).subarray(40) }) },
    { name: 'ICMPv6 echo', where: 'input', packet: icmp6Packet(C6, R6, 128, 0) },
    { name: 'ICMPv6 packet too big', where: 'input', packet: icmpErr(2, 0, Buffer.from([0, 0, 0x05, 0x00])) },
    { name: 'ICMPv6 parameter problem', where: 'input', packet: icmpErr(4, 1, Buffer.from([0, 0, 0, 40])) },
    { name: 'hop-by-hop and destination options before UDP', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 17, ext: [optionsHeader(0), optionsHeader(60)], payload: udp6Packet(C6, R6, 5000, 54).subarray(40) }) },
    { name: 'a first fragment', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 17, ext: [fragmentHeader(0, true)], payload: udp6Packet(C6, R6, 5000, 55).subarray(40) }) },
    { name: 'a later fragment', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 17, ext: [fragmentHeader(3, false)], payload: Buffer.alloc(16) }) },
    { name: 'no next header', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 59, payload: Buffer.alloc(4) }) },
    { name: 'forwarded TCP', where: 'forward', packet: tcp6Packet(C6, S6, { sport: 1000, dport: 80, flags: 0x12 }) },
  ];
  await compareLogLines(t, 6, rules, probes, probes.length);
});

/** The TCP checksum the segment at `l4` should carry (pseudo header included). */
function tcpChecksum(pkt: Buffer, l4: number): number {
  const seg = Buffer.from(pkt.subarray(l4));
  seg.writeUInt16BE(0, 16);
  const v6 = pkt[0]! >> 4 === 6;
  const pseudo = Buffer.alloc(v6 ? 40 : 12);
  if (v6) { pkt.copy(pseudo, 0, 8, 40); pseudo.writeUInt32BE(seg.length, 32); pseudo[39] = 6; }
  else { pkt.copy(pseudo, 0, 12, 20); pseudo[9] = 6; pseudo.writeUInt16BE(seg.length, 10); }
  return (~csum(seg, csum(pseudo))) & 0xffff;
}

function answers(topo: Topology, family: 4 | 6, p: Probe, complete?: Test): string[] {
  const rx = new RawReceiver(topo.client, 0, family === 6 ? 'wire6' : 'wire');
  try {
    send(topo, family, p);
    sleep(150);
    // what others sent to the client, without IPv6's neighbour discovery and multicast listener reports
    return rx.drain().filter((b) => (family === 4 ? b.readUInt32BE(16) === 0x0a000102
      : b.subarray(24, 40).toString('hex') === 'fd000001000000000000000000000002' && !(b[6] === 58 && b[40]! >= 130 && b[40]! <= 143)))
      .map((b) => {
        const c = Buffer.from(b);
        if (family === 4) { c.writeUInt16BE(0, 4); c.writeUInt16BE(0, 10); } else c.writeUInt32BE(c.readUInt32BE(0) & 0xfff00000, 0); // flow label: the kernel's hash
        const l4 = family === 4 ? (c[0]! & 0xf) * 4 : 40;
        if (c[family === 4 ? 9 : 6] === 6) {
          // the kernel leaves a reset's checksum to the device (CHECKSUM_PARTIAL: veth sends the pseudo-header
          // sum only); compare the checksum a device completes, after checking that ours is complete already
          if (complete) complete.equal(tcpChecksum(c, l4), c.readUInt16BE(l4 + 16), 'our reset carries a complete checksum');
          c.writeUInt16BE(tcpChecksum(c, l4), l4 + 16);
        }
        return c.toString('hex');
      });
  } finally { rx.close(); }
}

function compareAnswers(t: Test, pair: DiffPair, probes: (Probe & { expect: number })[]): void {
  for (const p of probes) {
    const legacy = answers(pair.legacy, pair.family, p);
    const ours = answers(pair.ours, pair.family, p, t);
    t.equal(legacy.length, p.expect, `${p.name}: the kernel answers ${p.expect} time(s)`);
    t.same(ours, legacy, `${p.name}: the same answer on the wire`);
  }
}

const REJECT4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7200 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 7201 -j REJECT --reject-with icmp-net-unreachable
-A INPUT -p udp -m udp --dport 7202 -j REJECT --reject-with icmp-host-unreachable
-A INPUT -p udp -m udp --dport 7203 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -p udp -m udp --dport 7204 -j REJECT --reject-with icmp-proto-unreachable
-A INPUT -p udp -m udp --dport 7205 -j REJECT --reject-with icmp-net-prohibited
-A INPUT -p udp -m udp --dport 7206 -j REJECT --reject-with icmp-host-prohibited
-A INPUT -p udp -m udp --dport 7207 -j REJECT --reject-with icmp-admin-prohibited
-A INPUT -p tcp -m tcp --dport 7210 -j REJECT
-A INPUT -p icmp -j REJECT
-A INPUT -f -j REJECT
-A FORWARD -p tcp -m tcp --dport 7220 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7221 -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -p udp -m udp --dport 7222 -j CHAIN1
-A CHAIN1 -j REJECT --reject-with icmp-net-prohibited
COMMIT
`.replace(':OUTPUT ACCEPT [0:0]\n', ':OUTPUT ACCEPT [0:0]\n:CHAIN1 - [0:0]\n');

t.test('REJECT answers like the kernel\'s REJECT, on the wire (IPv4)', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  // the kernel rate-limits ICMP errors per peer (a burst of 6); off here, measured in its own test
  for (const r of [pair.legacy.router, pair.ours.router]) sysctl(r, 'net.ipv4.icmp_ratelimit', '0');
  t.equal(loadBoth(pair, REJECT4, { legacy: '', ours: '' }), 0, 'our restore succeeded');
  const udp = (dport: number, extra = {}): Buffer => udpPacket(C, R, 5000, dport, { id: 0x4242, ...extra });
  compareAnswers(t, pair, [
    { name: 'tcp-reset to a SYN', where: 'input', packet: tcpPacket(C, R, { sport: 40000, dport: 7200, flags: 0x02, seq: 1000 }, { id: 1 }), expect: 1 },
    { name: 'tcp-reset to an ACK with data', where: 'input', packet: tcpPacket(C, R, { sport: 40001, dport: 7200, flags: 0x18, seq: 77, ack: 5555, payload: Buffer.from('data') }, { id: 2 }), expect: 1 },
    { name: 'tcp-reset to a FIN without ACK', where: 'input', packet: tcpPacket(C, R, { sport: 40002, dport: 7200, flags: 0x01, seq: 9, payload: Buffer.from('xy') }, { id: 3 }), expect: 1 },
    { name: 'no reset for a reset', where: 'input', packet: tcpPacket(C, R, { sport: 40003, dport: 7200, flags: 0x04 }, { id: 4 }), expect: 0 },
    ...[7201, 7202, 7203, 7204, 7205, 7206, 7207].map((d) => ({ name: `icmp type for port ${d}`, where: 'input' as const, packet: udp(d, { tos: 0x1c }), expect: 1 })),
    { name: 'default: port unreachable for tcp', where: 'input', packet: tcpPacket(C, R, { sport: 1, dport: 7210, flags: 0x02 }, { id: 5 }), expect: 1 },
    { name: 'an ICMP echo is answered', where: 'input', packet: icmpPacket(C, R, 8, 0, { id: 6 }), expect: 1 },
    { name: 'an ICMP error is not', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 1, id: 7, payload: icmpMessage(3, 1, Buffer.alloc(4), udp(1)) }), expect: 0 },
    { name: 'a later fragment is not', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 17, fragOff: 4, id: 8, payload: Buffer.alloc(24) }), expect: 0 },
    { name: 'a long datagram is quoted up to 576 bytes', where: 'input', packet: ipPacket({ src: C, dst: R, proto: 17, id: 9, payload: Buffer.concat([Buffer.from([0x13, 0x88, 0x1c, 0x23, 0x03, 0x20, 0, 0]), Buffer.alloc(792, 0x61)]) }), expect: 1 },
    { name: 'forwarded: tcp-reset from the server\'s address', where: 'forward', packet: tcpPacket(C, S, { sport: 2, dport: 7220, flags: 0x02 }, { id: 10 }), expect: 1 },
    { name: 'forwarded: host prohibited from the router', where: 'forward', packet: udpPacket(C, S, 5000, 7221, { id: 11 }), expect: 1 },
    { name: 'forwarded: REJECT in a user chain', where: 'forward', packet: udpPacket(C, S, 5000, 7222, { id: 12 }), expect: 1 },
  ]);
});

t.test('REJECT\'s ICMP errors are rate-limited per peer like the kernel\'s', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  t.equal(loadBoth(pair, REJECT4, { legacy: '', ours: '' }), 0, 'our restore succeeded');
  const count = (topo: Topology): number => {
    const rx = new RawReceiver(topo.client, 1, 'wire');
    try {
      for (let i = 0; i < 10; i++) sendRaw(topo.client, udpPacket(C, R, 5000, 7203, { id: 100 + i }));
      sleep(300);
      return rx.drain().filter((b) => b[9] === 1 && b.readUInt32BE(12) === 0x0a000101).length;
    } finally { rx.close(); }
  };
  const legacy = count(pair.legacy);
  t.equal(legacy, 6, 'the kernel answers a burst of 6');
  t.equal(count(pair.ours), legacy, 'and so does bpftables');
});

t.test('REJECT answers like the kernel\'s REJECT, on the wire (IPv6)', async (t) => {
  if (!requireKernel(t, ['ip6tables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair(6);
  t.teardown(() => pair.destroy());
  for (const r of [pair.legacy.router, pair.ours.router]) sysctl(r, 'net.ipv6.icmp.ratelimit', '0');
  const status = loadBoth(pair, `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7200 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 7201 -j REJECT --reject-with icmp6-no-route
-A INPUT -p udp -m udp --dport 7202 -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -p udp -m udp --dport 7203 -j REJECT --reject-with icmp6-addr-unreachable
-A INPUT -p udp -m udp --dport 7204 -j REJECT --reject-with icmp6-port-unreachable
-A INPUT -p udp -m udp --dport 7205 -j REJECT --reject-with icmp6-policy-fail
-A INPUT -p udp -m udp --dport 7206 -j REJECT --reject-with icmp6-reject-route
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j REJECT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j REJECT
-A FORWARD -p tcp -m tcp --dport 7220 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7221 -j REJECT
COMMIT
`, { legacy: '', ours: '' });
  t.equal(status, 0, 'our restore succeeded');
  compareAnswers(t, pair, [
    { name: 'tcp-reset to a SYN', where: 'input', packet: tcp6Packet(C6, R6, { sport: 40000, dport: 7200, flags: 0x02, seq: 1000 }), expect: 1 },
    { name: 'tcp-reset to an ACK', where: 'input', packet: tcp6Packet(C6, R6, { sport: 40001, dport: 7200, flags: 0x10, seq: 1, ack: 31337 }), expect: 1 },
    { name: 'tcp-reset behind a destination options header', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 6, ext: [optionsHeader(60)], payload: tcp6Packet(C6, R6, { sport: 40002, dport: 7200, flags: 0x02 }).subarray(40) }), expect: 1 },
    ...[7201, 7202, 7203, 7204, 7205, 7206].map((d) => ({ name: `icmp6 type for port ${d}`, where: 'input' as const, packet: udp6Packet(C6, R6, 5000, d), expect: 1 })),
    { name: 'an echo request is answered', where: 'input', packet: icmp6Packet(C6, R6, 128, 0), expect: 1 },
    { name: 'an ICMPv6 error is not', where: 'input', packet: icmp6Packet(C6, R6, 1, 4), expect: 0 },
    { name: 'a long datagram is quoted up to 1280 bytes', where: 'input', packet: ip6Packet({ src: C6, dst: R6, proto: 17, payload: udpDatagram6(C6, R6, 5000, 7204, Buffer.alloc(1400, 0x62)) }), expect: 1 },
    { name: 'forwarded: tcp-reset', where: 'forward', packet: tcp6Packet(C6, S6, { sport: 3, dport: 7220, flags: 0x02 }), expect: 1 },
    { name: 'forwarded: port unreachable from the router', where: 'forward', packet: udp6Packet(C6, S6, 5000, 7221), expect: 1 },
  ]);
});

t.test('logd: one per namespace, gone with its namespace', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const pair = new DiffPair(4);
  let destroyed = false;
  t.teardown(() => { if (!destroyed) pair.destroy(); });
  t.equal(loadBoth(pair, REJECT4, { legacy: '', ours: '' }), 0, 'our restore succeeded');
  const ino = netnsInode(pair.ours.router);
  const mine = (): number[] => logdsOf(ino);
  t.equal(mine().length, 1, 'a logd serves the namespace');
  t.equal(nsExec(pair.ours.router, path.join(BIN, 'iptables-restore'), ['--noflush'], '*filter\n-A INPUT -p udp --dport 9 -j LOG\nCOMMIT\n').status, 0, 'another restore');
  t.equal(mine().length, 1, 'still one logd');
  pair.destroy();
  destroyed = true;
  let left = mine().length;
  for (let i = 0; i < 40 && left; i++) { sleep(100); left = mine().length; }
  t.equal(left, 0, 'logd left with its namespace');
});

t.test('records the ring buffer has no room for are counted and reported by logd', async (t) => {
  if (!requireKernel(t, ['dmesg'])) return;
  prepareState();
  withLogAllNetns(t);
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  t.equal(nsExec(pair.ours.router, path.join(BIN, 'iptables-restore'), [], '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 7700 -j LOG --log-prefix "LOSS "\nCOMMIT\n').status, 0, 'restore');
  const logd = logdsOf(netnsInode(pair.ours.router))[0];
  t.ok(logd, 'logd runs');
  process.kill(logd!, 'SIGSTOP');
  try {
    // 1 MiB holds about 770 records: 1000 packets overflow it while logd sleeps
    for (let i = 0; i < 1000; i++) sendRaw(pair.ours.client, udpPacket(C, R, 5000, 7700));
  } finally { process.kill(logd!, 'SIGCONT'); }
  const lostCount = (): number => kernelLog('bpftables: ').map((l) => /^bpftables: (\d+) LOG\/REJECT records lost/.exec(l)).reduce((n, m) => n + Number(m?.[1] ?? 0), 0);
  let lost = 0, written = 0;
  for (let i = 0; i < 100 && lost === 0; i++) {
    sleep(100);
    lost = lostCount();
    written = kernelLog('LOSS ').length;
  }
  // the ring buffer holds a whole number of records (each with its 8-byte header, 8-aligned); the rest are lost
  const capacity = Math.floor(EVENTS_BYTES / (Math.ceil((RECORD_SIZE + 8) / 8) * 8));
  t.equal(lost, 1000 - capacity, `logd reports the ${1000 - capacity} records beyond the ring buffer's ${capacity} as lost`);
  // (the kernel log itself may have dropped the oldest of so many lines)
  t.ok(written >= 100, `the records that fitted are logged (${written} lines still in the kernel log)`);
});
