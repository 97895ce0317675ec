/**
 * IPv6 programs against the reference interpreter: random ip6tables rulesets
 * (addresses and masks, -p including `all`, icmp6, hl, iprange, ports,
 * conntrack, user chains) compiled, loaded and run with BPF_PROG_TEST_RUN on
 * random IPv6 packets, many with extension-header chains (hop-by-hop,
 * routing, fragment, AH, destination options; truncated, too long, non-first
 * fragments), each verdict and counter compared with xlate/eval.ts, whose
 * header walk follows the kernel's ipv6_find_hdr.
 */
import t from 'tap';
import { MAX_EXT_HEADERS } from '../cgen/headers';
import { authHeader, type Ext6, fragmentHeader, icmp6Message, ip6Packet, optionsHeader, routingHeader, tcpSegment6, udpDatagram6 } from '../compat/probes';
import { BUILTIN_CHAINS } from '../xlate/ir';
import { requireKernel } from './helpers/env';
import { pickFrom, rng } from './helpers/rng';
import { checkSeed } from './helpers/verdict-model';

const ADDRS = ['2001:db8::1', '2001:db8::2', '2001:db8:1::3', 'fd00::1', '::1', 'fe80::1:2', '2001:db8:ffff::ffff'];
const PORTS = [22, 53, 80, 443, 1024, 65535, 0];

function genRule(r: () => number, chains: string[], self: number, inputSide: boolean): string {
  const pick = pickFrom(r);
  const bang = (): string => (r() < 0.25 ? '! ' : '');
  const parts: string[] = [];
  if (r() < 0.3) parts.push(`${bang()}-s ${pick(ADDRS)}/${pick([16, 32, 48, 64, 100, 128])}`);
  if (r() < 0.2) parts.push(`${bang()}-d ${pick(ADDRS)}/${pick(['ffff:0:ffff::', '64', '128', '0'])}`);
  if (r() < 0.15 && !inputSide) parts.push(`${bang()}-o ${pick(['lo', 'l+', 'eth0', '+'])}`);
  const proto = pick(['tcp', 'udp', 'ipv6-icmp', 'none', 'none', 'all', '47', '59', '44']);
  if (proto !== 'none') parts.push(`${r() < 0.15 && (proto === '47' || proto === '59') ? '! ' : ''}-p ${proto}`);
  if (proto === 'tcp' || proto === 'udp') {
    if (r() < 0.5) parts.push(`-m ${proto}`);
    if (r() < 0.5) parts.push(`${bang()}--dport ${pick(PORTS)}`);
    if (r() < 0.3) parts.push(`${bang()}--sport ${pick(PORTS)}:${pick([1024, 65535])}`.replace(/(\d+):(\d+)/, (m, a, b) => (Number(a) <= Number(b) ? m : `${b}:${a}`)));
    if (proto === 'tcp' && r() < 0.3) parts.push(`${bang()}--syn`);
    if (r() < 0.2) parts.push(`-m multiport ${bang()}--dports 22,80,1000:2000`);
  }
  if (proto === 'ipv6-icmp' && r() < 0.7) parts.push(`-m icmp6 ${bang()}--icmpv6-type ${pick(['echo-request', '1/3', '1', '128', 'packet-too-big', '255'])}`);
  if (r() < 0.15) parts.push(`-m conntrack ${bang()}--ctstate ${pick(['INVALID', 'NEW,ESTABLISHED', 'UNTRACKED'])}`);
  if (r() < 0.12) parts.push(`-m iprange ${bang()}--${pick(['src', 'dst'])}-range ${pick(['2001:db8::1-2001:db8:1::ffff', '::-::1', 'fd00::-fe80::ffff'])}`);
  if (r() < 0.15) parts.push(`-m length ${bang()}--length ${pick(['0:80', '48', '100:65535'])}`);
  if (r() < 0.15) parts.push(`-m hl ${pick(['--hl-eq 64', '! --hl-eq 64', '--hl-lt 10', '--hl-gt 1'])}`);
  if (r() < 0.05) parts.push('-m comment --comment "generated"');
  if (r() < 0.06) parts.push(`-m dscp ${bang()}--dscp ${pick(['0', '0x2e'])}`);
  if (r() < 0.06) parts.push(`-m tos ${bang()}--tos ${pick(['0xb8', '0/0xfc'])}`);
  if (r() < 0.05) parts.push(`-m pkttype ${bang()}--pkt-type ${pick(['unicast', 'multicast'])} -m mark ${bang()}--mark ${pick(['0', '1'])}`);
  if (r() < 0.05) parts.push(`-m limit --limit 1/hour --limit-burst ${pick([1, 3])}`);
  if (r() < 0.05) parts.push(`-m statistic --mode nth ${bang()}--every ${pick([2, 3])} --packet 1`);
  const targets = ['ACCEPT', 'DROP', 'RETURN', '', ...chains.slice(self + 1).flatMap((c) => [`${c}`, `@${c}`])];
  const tgt = pick(targets);
  if (tgt.startsWith('@')) parts.push(`-g ${tgt.slice(1)}`);
  else if (tgt) parts.push(`-j ${tgt}`);
  return parts.join(' ');
}

function genRuleset(r: () => number): string {
  const users = ['U1', 'U2', 'U3'];
  const lines = ['*filter'];
  for (const b of BUILTIN_CHAINS) lines.push(`:${b} ${r() < 0.5 ? 'ACCEPT' : 'DROP'} [0:0]`);
  for (const u of users) lines.push(`:${u} - [0:0]`);
  for (const b of BUILTIN_CHAINS) {
    const n = 4 + Math.floor(r() * 12);
    for (let i = 0; i < n; i++) lines.push(`-A ${b} ${genRule(r, users, -1, b === 'INPUT')}`);
  }
  users.forEach((u, i) => {
    const n = 1 + Math.floor(r() * 6);
    for (let k = 0; k < n; k++) lines.push(`-A ${u} ${genRule(r, users, i, true)}`);
  });
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function genPacket(r: () => number): Buffer {
  const pick = pickFrom(r);
  const src = pick(ADDRS), dst = pick(ADDRS);
  const hopLimit = pick([1, 5, 64, 255]);
  const exts: Ext6[] = [];
  const nExt = pick([0, 0, 0, 1, 1, 2, 3, MAX_EXT_HEADERS + 1]);
  for (let i = 0; i < nExt; i++) {
    exts.push(pick<() => Ext6>([
      () => optionsHeader(i === 0 ? 0 : 60, pick([1, 2])), () => optionsHeader(60), routingHeader, authHeader,
      () => fragmentHeader(pick([0, 0, 3]), r() < 0.5),
    ])());
  }
  const kind = pick(['tcp', 'udp', 'icmp6', 'gre', 'short', 'none']);
  let proto: number, payload: Buffer;
  switch (kind) {
    case 'tcp': proto = 6; payload = tcpSegment6(src, dst, { sport: pick(PORTS), dport: pick(PORTS), flags: pick([2, 18, 16, 0]), payload: Buffer.alloc(pick([0, 30])) }); break;
    case 'udp': proto = 17; payload = udpDatagram6(src, dst, pick(PORTS), pick(PORTS)); break;
    case 'icmp6': proto = 58; payload = icmp6Message(src, dst, pick([1, 2, 128, 129, 255]), pick([0, 3, 4])); break;
    case 'gre': proto = 47; payload = Buffer.alloc(12); break;
    case 'none': proto = 59; payload = Buffer.alloc(0); break;
    default: proto = pick([6, 17, 58]); payload = Buffer.alloc(pick([0, 3, 7]));
  }
  const p = ip6Packet({ src, dst, proto, hopLimit, ext: exts, payload });
  p.writeUInt32BE((p.readUInt32BE(0) & 0xf00fffff) | (pick([0, 0, 0xb8, 0x10]) << 20), 0); // traffic class
  // sometimes cut the packet inside the extension headers
  return r() < 0.08 ? p.subarray(0, 40 + Math.floor(r() * Math.max(1, p.length - 40))) : p;
}

t.test('generated IPv6 programs agree with the reference interpreter', async (t) => {
  if (!requireKernel(t)) return;
  let packets = 0, noproto = 0, fragments = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const r = rng(1000 + seed);
    const res = checkSeed(t, {
      seed, text: genRuleset(r), family: 6, perHook: 70, packet: () => genPacket(r),
      onView: (v) => { if (v.noproto) noproto++; if (v.fragoff) fragments++; },
    });
    packets += res.packets;
  }
  t.ok(packets >= 4000, `${packets} packets checked`);
  t.ok(noproto >= 100, `${noproto} packets whose extension headers cannot be followed`);
  t.ok(fragments >= 50, `${fragments} non-first fragments`);
});
