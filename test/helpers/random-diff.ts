/**
 * Random differential runs through the kernel: a seeded generator writes a
 * filter table from the options bpftables supports (user chains, jumps and
 * gotos, negations, every stateless match, ctstate) over the addresses and
 * devices of the differential topology (compat/lab Topology), and crafted
 * packets for it (input, forward, output; TCP flag sets, ports, ICMP types,
 * TTLs, TOS bytes, IP options, headers cut short, fragments; for IPv6
 * extension-header chains, hop limits and traffic classes). The same table
 * goes to ip[6]tables-legacy-restore in one router and to ours in the other;
 * the same packets go through both.
 *
 * Left out, because the two runs would not see the same history: limit and
 * statistic (the router's own ICMP errors and TCP resets, which the kernel
 * rate-limits by time, pass OUTPUT between probes), and matches of state
 * outside the packet the topology cannot set (mark, owner, mac, sets).
 */
import type { Test } from 'tap';
import { authHeader, type Ext6, fragmentHeader, icmp6Message, icmpMessage, ip6Packet, ipPacket, optionsHeader, routingHeader, tcpSegment, tcpSegment6, udpDatagram, udpDatagram6 } from '../../compat/probes';
import { nsExec } from '../../compat/lab';
import { BIN } from './env';
import { DiffPair, type ProbeSpec, type Where } from './differential';
import { pickFrom, rng } from './rng';
import path from 'node:path';

const C = '10.0.1.2', R = '10.0.1.1', R1 = '10.0.2.1', S = '10.0.2.2';
/** addresses rules name (hosts of the topology, their networks, and others) */
const RULE_ADDRS = [C, R, R1, S, '10.0.1.0', '10.0.2.0', '10.0.0.0', '198.51.100.7', '10.0.1.77'];
const C6 = 'fd00:1::2', R6 = 'fd00:1::1', R61 = 'fd00:2::1', S6 = 'fd00:2::2';
const RULE_ADDRS6 = [C6, R6, R61, S6, 'fd00:1::', 'fd00:2::', 'fd00::', '2001:db8::7', 'fd00:1::77'];
const PORTS = [0, 22, 53, 80, 443, 1023, 1024, 8080, 65535];
const USERS = ['U1', 'U2', 'U3'];

/** What a generated rule names, per family: addresses, protocols and the family's own matches. */
const PROFILES = {
  4: {
    addrs: RULE_ADDRS, lengths: ['8', '16', '24', '31', '32', '32', '255.255.0.255'],
    protos: ['tcp', 'tcp', 'udp', 'udp', 'icmp', 'none', 'none', '47', 'all'],
    icmp: (not: string, type: string) => `-m icmp ${not}--icmp-type ${type}`, icmpProtos: ['icmp'],
    icmpTypes: ['any', 'echo-request', 'echo-reply', '3/3', '3', 'port-unreachable', '11', 'timestamp-request', '5/1'],
    ttl: ['-m ttl --ttl-eq 64', '-m ttl ! --ttl-eq 64', '-m ttl --ttl-lt 10', '-m ttl --ttl-gt 1', '-m ttl --ttl-eq 255'],
    lengthValues: ['0:60', '40', '28', '100:65535', '61:200'],
    ranges: ['10.0.1.1-10.0.1.2', '10.0.0.0-10.0.1.255', '10.0.2.2-10.0.2.2', '198.51.100.0-198.51.100.255'],
    addrtypes: ['--dst-type LOCAL', '! --dst-type LOCAL', '--src-type UNICAST', '--dst-type BROADCAST,MULTICAST', '--src-type LOCAL'],
  },
  6: {
    addrs: RULE_ADDRS6, lengths: ['16', '32', '64', '126', '128', '128', 'ffff:ffff::ffff'],
    protos: ['tcp', 'tcp', 'udp', 'udp', 'ipv6-icmp', 'icmpv6', 'none', 'none', 'all', '47', '59', '44', '51'],
    icmp: (not: string, type: string) => `-m icmp6 ${not}--icmpv6-type ${type}`, icmpProtos: ['ipv6-icmp', 'icmpv6'],
    icmpTypes: ['echo-request', 'echo-reply', '1/3', '1', '128', 'packet-too-big', 'time-exceeded', '255'],
    ttl: ['-m hl --hl-eq 64', '-m hl ! --hl-eq 64', '-m hl --hl-lt 10', '-m hl --hl-gt 1', '-m hl --hl-eq 255'],
    lengthValues: ['0:80', '48', '60', '100:65535', '61:200'],
    ranges: ['fd00:1::1-fd00:1::2', 'fd00::-fd00:1::ffff', '2001:db8::-2001:db8::ff'],
    addrtypes: ['--dst-type LOCAL', '! --dst-type LOCAL', '--src-type UNICAST', '--dst-type MULTICAST'],
  },
} as const;

function genRule(r: () => number, chain: string, self: number, family: 4 | 6): string {
  const pick = pickFrom(r);
  const f = PROFILES[family];
  const bang = (): string => (r() < 0.25 ? '! ' : '');
  const parts: string[] = [];
  const addr = (): string => `${pick(f.addrs)}/${pick(f.lengths)}`;
  if (r() < 0.3) parts.push(`${bang()}-s ${addr()}`);
  if (r() < 0.3) parts.push(`${bang()}-d ${addr()}`);
  const devs = ['r0', 'r1', 'r+', 'lo', 'c0', '+'];
  // iptables refuses -i in OUTPUT and -o in INPUT; a user chain may say either (the missing device is "")
  if (r() < 0.2 && chain !== 'OUTPUT') parts.push(`${bang()}-i ${pick(devs)}`);
  if (r() < 0.2 && chain !== 'INPUT') parts.push(`${bang()}-o ${pick(devs)}`);
  const proto = pick(f.protos);
  // (`! -p all` never matches: iptables refuses it, and so do we; test/restore-fail says so)
  const negProto = proto !== 'none' && proto !== 'all' && r() < 0.1;
  if (proto !== 'none') parts.push(`${negProto ? '! ' : ''}-p ${proto}`);
  if (family === 4 && r() < 0.08) parts.push(`${bang()}-f`);
  if (!negProto && (proto === 'tcp' || proto === 'udp')) {
    if (r() < 0.6) {
      const opts = [`-m ${proto}`];
      if (r() < 0.5) opts.push(`${bang()}--dport ${pick(PORTS)}${r() < 0.3 ? `:${pick([1023, 9000, 65535])}` : ''}`.replace(/(\d+):(\d+)/, (m, a, b) => (Number(a) <= Number(b) ? m : `${b}:${a}`)));
      if (r() < 0.3) opts.push(`${bang()}--sport ${pick(PORTS)}`);
      if (proto === 'tcp' && r() < 0.4) opts.push(r() < 0.4 ? `${bang()}--syn` : `${bang()}--tcp-flags ${pick(['SYN,ACK', 'ALL', 'FIN,SYN,RST', 'NONE', 'URG,PSH'])} ${pick(['SYN', 'ACK', 'NONE', 'FIN', 'SYN,ACK', 'ALL'])}`);
      parts.push(opts.join(' '));
    }
    if (r() < 0.2) parts.push(`-m multiport ${bang()}${pick(['--dports', '--sports', '--ports'])} ${pick(['22,80', '1:1023', '53,443:8080,9', '0'])}`);
    if (family === 4 && proto === 'tcp' && r() < 0.08) parts.push(`-m ecn ${bang()}--ecn-tcp-ece${r() < 0.5 ? ` ${bang()}--ecn-tcp-cwr` : ''}`);
  }
  if (!negProto && (f.icmpProtos as readonly string[]).includes(proto) && r() < 0.7) parts.push(f.icmp(bang(), pick(f.icmpTypes)));
  if (r() < 0.12) parts.push(`-m conntrack ${bang()}--ctstate ${pick(['INVALID', 'NEW', 'NEW,ESTABLISHED', 'RELATED,ESTABLISHED', 'UNTRACKED', 'DNAT', 'SNAT,INVALID'])}`);
  if (r() < 0.04) parts.push(`-m state ${bang()}--state ${pick(['NEW', 'INVALID', 'ESTABLISHED,RELATED'])}`);
  if (r() < 0.04) parts.push(`-m conntrack ${bang()}--ctstatus ${pick(['NONE', 'CONFIRMED', 'ASSURED', 'SEEN_REPLY'])}${r() < 0.5 ? ` --ctdir ${pick(['ORIGINAL', 'REPLY'])}` : ''}`);
  if (r() < 0.1) parts.push(`-m iprange ${bang()}${pick(['--src-range', '--dst-range'])} ${pick(f.ranges)}`);
  if (r() < 0.12) parts.push(`-m length ${bang()}--length ${pick(f.lengthValues)}`);
  if (r() < 0.12) parts.push(pick(f.ttl));
  if (r() < 0.06) parts.push(`-m ecn ${bang()}--ecn-ip-ect ${pick([0, 1, 2, 3])}`);
  if (r() < 0.06) parts.push(`-m dscp ${bang()}${pick(['--dscp 0', '--dscp 0x2e', '--dscp 4', '--dscp-class EF', '--dscp-class CS1'])}`);
  if (r() < 0.06) parts.push(`-m tos ${bang()}--tos ${pick(['0x10/0x3f', '0xb8', '0/0xfc', 'Minimize-Cost', 'Normal-Service'])}`);
  if (r() < 0.06) parts.push(`-m pkttype ${bang()}--pkt-type ${pick(['unicast', 'broadcast', 'multicast'])}`);
  if (r() < 0.06) parts.push(`-m addrtype ${pick(f.addrtypes)}${chain === 'INPUT' && r() < 0.3 ? ' --limit-iface-in' : ''}`);
  if (r() < 0.04) parts.push('-m comment --comment "random"');
  const later = USERS.slice(self + 1);
  const tgt = pick(['ACCEPT', 'ACCEPT', 'DROP', 'DROP', 'RETURN', '', ...later.flatMap((c) => [`-j ${c}`, `-g ${c}`])]);
  if (tgt.startsWith('-')) parts.push(tgt);
  else if (tgt) parts.push(`-j ${tgt}`);
  return parts.join(' ');
}

/** A random filter table (ip[6]tables-save form) over the topology. */
export function genTable(r: () => number, family: 4 | 6 = 4): string {
  const lines = ['*filter'];
  for (const b of ['INPUT', 'FORWARD', 'OUTPUT']) lines.push(`:${b} ${r() < 0.5 ? 'ACCEPT' : 'DROP'} [0:0]`);
  for (const u of USERS) lines.push(`:${u} - [0:0]`);
  for (const b of ['INPUT', 'FORWARD', 'OUTPUT']) {
    const n = 3 + Math.floor(r() * 9);
    for (let i = 0; i < n; i++) lines.push(`-A ${b} ${genRule(r, b, -1, family)}`.trimEnd());
  }
  USERS.forEach((u, i) => {
    const n = 1 + Math.floor(r() * 5);
    for (let k = 0; k < n; k++) lines.push(`-A ${u} ${genRule(r, u, i, family)}`.trimEnd());
  });
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * An ICMP message's identifier and sequence number, its own for each probe: conntrack keys an echo or
 * timestamp request by its identifier, so a probe never meets the connection of another probe, whose
 * reply comes back at its own time (in each router at another moment)
 */
const echoId = (i: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt16BE(0x4000 + i, 0); b.writeUInt16BE(1, 2); return b; };

/** A random packet for where it goes: to the router (input), through it (forward), or from it (output). */
export function genProbe(r: () => number, i: number): ProbeSpec {
  const pick = pickFrom(r);
  const where: Where = pick(['input', 'input', 'forward', 'forward', 'output']);
  const src = where === 'output' ? pick([R, R, R1]) : pick([C, C, '198.51.100.7', '10.0.1.77']);
  const dst = where === 'input' ? pick([R, R, R1]) : where === 'forward' ? S : C;
  const ttl = pick([1, 2, 5, 10, 11, 64, 64, 255]);
  const tos = pick([0, 0, 0, 0x10, 0xb8, 0x12, 0x02, 0x03, 0x01, 0x04]);
  const dontFragment = r() < 0.3;
  // IP options: four NOPs (a header of 24 bytes)
  const options = r() < 0.1 ? Buffer.from([1, 1, 1, 1]) : undefined;
  const kind = pick(['tcp', 'tcp', 'tcp', 'udp', 'udp', 'icmp', 'icmp', 'gre', 'short', ...(where === 'forward' ? ['frag'] : [])]);
  const base = { src, dst, ttl, tos, dontFragment, options };
  let packet: Buffer, what: string;
  switch (kind) {
    case 'tcp': {
      const sport = pick(PORTS.filter((p) => p > 0)), dport = pick(PORTS), flags = pick([2, 2, 18, 16, 17, 4, 20, 0, 63, 1, 3, 0x42, 0xc2, 0x29]);
      packet = ipPacket({ ...base, proto: 6, payload: tcpSegment(src, dst, { sport, dport, flags, payload: Buffer.alloc(pick([0, 0, 20, 300])) }) });
      what = `tcp ${sport}->${dport} flags 0x${flags.toString(16)}`;
      break;
    }
    case 'udp': {
      const sport = pick(PORTS.filter((p) => p > 0)), dport = pick(PORTS);
      packet = ipPacket({ ...base, proto: 17, payload: udpDatagram(src, dst, sport, dport, Buffer.alloc(pick([0, 5, 100]))) });
      what = `udp ${sport}->${dport}`;
      break;
    }
    case 'icmp': {
      const [type, code] = pick([[8, 0], [8, 0], [0, 0], [3, 3], [3, 4], [11, 0], [13, 0], [5, 1]] as const);
      packet = ipPacket({ ...base, proto: 1, payload: icmpMessage(type, code, echoId(i)) });
      what = `icmp ${type}/${code}`;
      break;
    }
    case 'gre': packet = ipPacket({ ...base, proto: 47, payload: Buffer.alloc(8) }); what = 'gre'; break;
    case 'short': {
      const proto = pick([6, 17, 1]);
      packet = ipPacket({ ...base, proto, payload: Buffer.alloc(pick([0, 3, 7])) });
      what = `proto ${proto}, header cut short`;
      break;
    }
    default: {
      const proto = pick([6, 17, 1]);
      const first = r() < 0.5;
      packet = ipPacket({ ...base, dontFragment: false, proto, moreFragments: first, fragOff: first ? 0 : pick([1, 3, 185]), payload: Buffer.alloc(24, pick([0, 0x50])) });
      what = `proto ${proto}, ${first ? 'first' : 'later'} fragment`;
    }
  }
  return { name: `#${i} ${where} ${src}->${dst} ${what} ttl ${ttl} tos 0x${tos.toString(16)}${options ? ' +options' : ''}`, where, packet };
}


/** A random packet of IPv6 for where it goes, sometimes behind extension headers or cut short in them. */
export function genProbe6(r: () => number, i: number): ProbeSpec {
  const pick = pickFrom(r);
  const where: Where = pick(['input', 'input', 'forward', 'forward', 'output']);
  const src = where === 'output' ? pick([R6, R6, R61]) : pick([C6, C6, '2001:db8::7', 'fd00:1::77']);
  const dst = where === 'input' ? pick([R6, R6, R61]) : where === 'forward' ? S6 : C6;
  const hopLimit = pick([1, 2, 5, 10, 64, 64, 255]);
  const trafficClass = pick([0, 0, 0, 0x10, 0xb8, 0x12, 0x02, 0x03, 0x01]);
  const ext: Ext6[] = [];
  const nExt = pick([0, 0, 0, 0, 1, 1, 2]);
  for (let k = 0; k < nExt; k++) {
    ext.push(pick<() => Ext6>([
      () => optionsHeader(k === 0 ? 0 : 60, pick([1, 2])), () => optionsHeader(60), routingHeader, authHeader,
      ...(where === 'forward' ? [() => fragmentHeader(pick([0, 3]), r() < 0.5)] : []),
    ])());
  }
  const kind = pick(['tcp', 'tcp', 'tcp', 'udp', 'udp', 'icmp6', 'icmp6', 'gre', 'none', 'short']);
  let proto: number, payload: Buffer, what: string;
  switch (kind) {
    case 'tcp': {
      const sport = pick(PORTS.filter((p) => p > 0)), dport = pick(PORTS), flags = pick([2, 2, 18, 16, 17, 4, 0, 63, 3]);
      proto = 6; payload = tcpSegment6(src, dst, { sport, dport, flags, payload: Buffer.alloc(pick([0, 0, 20, 300])) });
      what = `tcp ${sport}->${dport} flags 0x${flags.toString(16)}`;
      break;
    }
    case 'udp': {
      const sport = pick(PORTS.filter((p) => p > 0)), dport = pick(PORTS);
      proto = 17; payload = udpDatagram6(src, dst, sport, dport, Buffer.alloc(pick([0, 5, 100])));
      what = `udp ${sport}->${dport}`;
      break;
    }
    case 'icmp6': {
      // no neighbour discovery or router messages (133 to 137): they would change the routers' state
      const [type, code] = pick([[128, 0], [128, 0], [129, 0], [1, 3], [1, 4], [2, 0], [3, 0], [4, 1]] as const);
      proto = 58; payload = icmp6Message(src, dst, type, code, undefined, echoId(i));
      what = `icmpv6 ${type}/${code}`;
      break;
    }
    case 'gre': proto = 47; payload = Buffer.alloc(8); what = 'gre'; break;
    case 'none': proto = 59; payload = Buffer.alloc(0); what = 'no next header'; break;
    default: proto = pick([6, 17, 58]); payload = Buffer.alloc(pick([0, 3, 7])); what = `proto ${proto}, header cut short`;
  }
  const packet = ip6Packet({ src, dst, proto, hopLimit, trafficClass, ext, payload });
  const exts = ext.map((e) => e.type).join(',');
  return { name: `#${i} ${where} ${src}->${dst} ${what}${exts ? ` behind ${exts}` : ''} hl ${hopLimit} tc 0x${trafficClass.toString(16)}`, where, packet };
}

/**
 * Run `seeds` random tables with `probes` packets each through iptables-legacy and bpftables:
 * every table both load or both refuse, and every packet fares alike. Returns how many packets
 * were compared and how many of them the kernel delivered.
 */
export function runRandomDiff(t: Test, pair: DiffPair, seeds: number[], probes: number): { packets: number; delivered: number; refused: number } {
  let packets = 0, delivered = 0, refused = 0;
  for (const seed of seeds) {
    const r = rng(seed);
    const v6 = pair.family === 6;
    const table = genTable(r, pair.family);
    const ip = v6 ? 'ip6tables' : 'iptables';
    const legacy = nsExec(pair.legacy.router, `${ip}-legacy-restore`, [], table);
    const ours = nsExec(pair.ours.router, path.join(BIN, `${ip}-restore`), [], table);
    if (legacy.status !== 0 || ours.status !== 0) {
      // a table the kernel's iptables refuses: ours must refuse it too, and the other way round
      t.equal(ours.status !== 0, legacy.status !== 0, `seed ${seed}: both refuse or both load (${ip}: ${legacy.stderr.trim() || 'loaded'}; bpftables: ${ours.stderr.trim() || 'loaded'})`);
      refused++;
      continue;
    }
    const specs = Array.from({ length: probes }, (_, i) => (v6 ? genProbe6(r, i) : genProbe(r, i)));
    const out = pair.probe(specs);
    const wrong = out.filter((o) => o.ours !== o.legacy);
    t.same(wrong.map((o) => `${o.name}: bpftables ${o.ours ? 'delivered' : 'dropped'}, ${ip} ${o.legacy ? 'delivered' : 'dropped'}`), [], `seed ${seed}: ${probes} packets fare alike`);
    if (wrong.length) t.comment(`seed ${seed}'s table:\n${table}`);
    packets += out.length;
    delivered += out.filter((o) => o.legacy).length;
  }
  return { packets, delivered, refused };
}
