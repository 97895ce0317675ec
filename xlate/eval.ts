/**
 * A reference interpreter of the IR: what a ruleset decides for one packet,
 * following iptables' semantics step by step (IP part, matches in order,
 * hotdrop, jump/goto/RETURN, policies). It is independent of the code
 * generator, so tests can check generated programs against it, and the demo
 * uses it to say what the rules decide.
 */
import { and6, cmp6, eq6, type Words6 } from './addr';
import { addrElementRange, words6ToBig } from './nft-sets';
import { type BuiltinChain, type CtState, ctTupleFields, type IfaceMatch, isAddr6, isRange6, l4Need, type Match, type Rule, type Table } from './ir';

/** A packet as the rules see it. IPv6: saddr6/daddr6 set, proto found behind the extension headers, fragoff in bytes. */
export interface PacketView {
  saddr: number; daddr: number; proto: number; ttl: number; totlen: number; fragoff: number;
  skblen: number; l4avail: number; sport: number; dport: number; tcpflags: number; icmptype: number; icmpcode: number;
  in: string; out: string; ct: CtState;
  /** skb->mark, the link-layer packet type (0 host, 1 broadcast, 2 multicast, 3 otherhost), the TOS byte / traffic class */
  mark?: number; pkttype?: number; tos?: number;
  /** the input and output devices' interface indexes (0 or absent: none) */
  inIndex?: number; outIndex?: number;
  /** IPv6: the fixed header's next-header field */
  nexthdr?: number;
  /** the network header, and the bytes from the transport header on (l4avail of them), as they are (nft's payload fields) */
  nh?: Buffer; th?: Buffer;
  /** the connection's NAT bits, status bits and direction (when it has a connection) */
  ctNat?: ('SNAT' | 'DNAT')[]; ctStatus?: number; ctReply?: boolean; ctMark?: number;
  /** Ethernet source address when the packet came in on an Ethernet device */
  macSource?: number[];
  saddr6?: Words6; daddr6?: Words6;
  /** IPv6: the extension-header chain could not be followed (rules with -p drop the packet) */
  noproto?: boolean;
  /** ipset membership of this packet for a set match (the model holds no sets: the caller answers) */
  inSet?: (m: Extract<Match, { kind: 'set' }>) => boolean;
  /** the socket's owner: none, a socket without a file, or its file's fsuid/fsgid */
  owner?: 'none' | 'nofile' | { uid: number; gid: number };
  /** TCP MSS option as xt_tcpmss reads it: its value, none, or an unreadable header or option area */
  mss?: number | 'none' | 'bad';
}

/** xt_tcpmss's walk of the TCP options at `thoff`. */
export function tcpMssOf(p: Buffer, thoff: number): number | 'none' | 'bad' {
  if (p.length < thoff + 20) return 'bad';
  const doff = (p[thoff + 12]! >> 4) * 4;
  if (doff < 20) return 'bad';
  const optlen = doff - 20;
  if (optlen === 0) return 'none';
  if (p.length < thoff + doff) return 'bad';
  const op = p.subarray(thoff + 20, thoff + doff);
  const at = (i: number): number => op[i] ?? 0;
  for (let i = 0; i < optlen;) {
    if (at(i) === 2 && optlen - i >= 4 && at(i + 1) === 4) return (at(i + 2) << 8) | at(i + 3);
    i += at(i) < 2 ? 1 : at(i + 1) || 1;
  }
  return 'none';
}

/**
 * nft's reading of the MSS option (`tcp option maxseg size`) in the TCP header `th`: the first option of
 * kind 2 ends the walk, its value when its length (0 counts as 1) is at least 4 and it lies within the
 * header; no such option, or a header that is not all there, is none.
 */
export function nftTcpMssOf(th: Buffer): number | 'none' {
  if (th.length < 20) return 'none';
  const doff = (th[12]! >> 4) * 4;
  if (doff < 20 || th.length < doff) return 'none';
  for (let i = 20; i < doff - 1;) {
    const len = th[i]! <= 1 || th[i + 1] === 0 ? 1 : th[i + 1]!;
    if (th[i] === 2) return i + len > doff || len < 4 ? 'none' : (th[i + 2]! << 8) | th[i + 3]!;
    i += len;
  }
  return 'none';
}

const EXT_HEADERS = new Set([0, 43, 44, 51, 60]);

/** Decode an IPv6 packet as the hook sees it, following extension headers like the kernel's ipv6_find_hdr (`nft`: as nft asks it, stopping at AH). */
export function viewPacket6(p: Buffer, iface: { in?: string; out?: string }, ct: CtState = 'INVALID', maxExt = 16, nft = false): PacketView {
  const words = (o: number): Words6 => [0, 4, 8, 12].map((k) => p.readUInt32BE(o + k));
  let nh = p[6]!;
  let off = 40;
  let fragoff = 0;
  let noproto = false;
  let found = false;
  for (let i = 0; i <= maxExt; i++) {
    // nft's walk stops at AH (ip6tables' skips it)
    if (!EXT_HEADERS.has(nh) || (nft && nh === 51)) { found = true; break; }
    if (i === maxExt || off + 2 > p.length) { noproto = true; break; }
    const next = p[off]!, len = p[off + 1]!;
    if (nh === 44) {
      if (off + 4 > p.length) { noproto = true; break; }
      const fo = p.readUInt16BE(off + 2) & 0xfff8;
      if (fo !== 0) {
        if (EXT_HEADERS.has(next)) noproto = true; else { fragoff = fo; nh = next; }
        break;
      }
      off += 8;
    } else off += nh === 51 ? (len + 2) * 4 : (len + 1) * 8;
    nh = next;
  }
  // nft on this kernel: a non-first fragment's transport offset stays 0 (ipv6_find_hdr returns its protocol
  // without setting it), so nft's transport loads read the IPv6 header; ip6tables' matches read none there
  const nftLater = nft && fragoff !== 0 && !noproto;
  const thoff = nftLater ? 0 : off;
  const l4avail = nftLater ? p.length : found && fragoff === 0 ? Math.max(0, p.length - off) : 0;
  const at = (o: number, n: 1 | 2): number => (l4avail >= o + n ? (n === 1 ? p[thoff + o]! : p.readUInt16BE(thoff + o)) : 0);
  return {
    tos: (p.readUInt16BE(0) >> 4) & 0xff, saddr: 0, daddr: 0, saddr6: words(8), daddr6: words(24), proto: noproto ? 0 : nh, noproto, nexthdr: p[6]!, ttl: p[7]!,
    totlen: (p.readUInt16BE(4) + 40) & 0xffff, fragoff, skblen: p.length, l4avail,
    sport: at(0, 2), dport: at(2, 2), tcpflags: at(13, 1), icmptype: at(0, 1), icmpcode: at(1, 1),
    in: iface.in ?? '', out: iface.out ?? '', ct, mss: found && fragoff === 0 && nh === 6 ? tcpMssOf(p, off) : 'bad',
    nh: p, th: p.subarray(thoff, thoff + l4avail),
  };
}

/** Decode an IPv4 packet as the hook sees it. */
export function viewPacket(p: Buffer, iface: { in?: string; out?: string }, ct: CtState = 'INVALID'): PacketView {
  const thoff = (p[0]! & 0xf) * 4;
  const fragoff = p.readUInt16BE(6) & 0x1fff;
  const l4avail = Math.max(0, p.length - thoff); // also for non-first fragments (xt_ecn reads them); matches check fragoff first
  const at = (o: number, n: 1 | 2): number => (l4avail >= o + n ? (n === 1 ? p[thoff + o]! : p.readUInt16BE(thoff + o)) : 0);
  return {
    tos: p[1]!, saddr: p.readUInt32BE(12), daddr: p.readUInt32BE(16), proto: p[9]!, ttl: p[8]!, totlen: p.readUInt16BE(2), fragoff,
    skblen: p.length, l4avail, sport: at(0, 2), dport: at(2, 2), tcpflags: at(13, 1), icmptype: at(0, 1), icmpcode: at(1, 1),
    in: iface.in ?? '', out: iface.out ?? '', ct, mss: p[9] === 6 ? tcpMssOf(p, thoff) : 'none',
    nh: p, th: p.subarray(thoff),
  };
}

export interface Decision { verdict: 'ACCEPT' | 'DROP'; by: string }

type Step = { kind: 'match' } | { kind: 'nomatch' } | { kind: 'hotdrop' };

function ifaceOk(m: IfaceMatch | undefined, name: string): boolean {
  if (!m) return true;
  const eq = m.wildcard ? name.startsWith(m.name) : name === m.name;
  return eq !== m.invert;
}

function inRange(v: number, lo: number, hi: number): boolean { return v >= lo && v <= hi; }

/** iptables' header guard; `short`: the bytes an nft payload load reads (l4Need), fewer do not match */
function l4(p: PacketView, need: number, evil: boolean, short?: number): Step | null {
  if (short !== undefined) return p.l4avail < short ? { kind: 'nomatch' } : null;
  if (p.fragoff !== 0) return evil && p.fragoff === 1 ? { kind: 'hotdrop' } : { kind: 'nomatch' };
  if (p.l4avail < need) return { kind: 'hotdrop' };
  return null;
}

/**
 * State of the stateful matches, per match object, for one run of the
 * interpreter: nth counters as the kernel keeps them, and limit as a bucket
 * that never refills (exact for rates so slow that no credit comes back
 * while a test runs); a random statistic other than 0 or 1 has no single answer.
 */
export type MatchState = Map<Match, number>;

function matchStep(m: Match, p: PacketView, state: MatchState): Step {
  const yes = (b: boolean): Step => ({ kind: b ? 'match' : 'nomatch' });
  switch (m.kind) {
    case 'tcp': case 'udp': {
      const g = l4(p, m.kind === 'tcp' ? 20 : 8, m.kind === 'tcp', l4Need(m));
      if (g) return g;
      if (m.sport && inRange(p.sport, ...m.sport.range) === m.sport.invert) return yes(false);
      if (m.dport && inRange(p.dport, ...m.dport.range) === m.dport.invert) return yes(false);
      if (m.kind === 'tcp' && m.flags && (((p.tcpflags & m.flags.mask) === m.flags.comp) === m.flags.invert)) return yes(false);
      return yes(true);
    }
    case 'icmp': case 'icmp6': {
      const g = l4(p, 8, false, l4Need(m));
      if (g) return g;
      const hit = (m.kind === 'icmp' && m.type === 0xff) || (p.icmptype === m.type && inRange(p.icmpcode, m.codeMin, m.codeMax));
      return yes(hit !== m.invert);
    }
    case 'multiport': {
      const g = l4(p, 4, false, l4Need(m));
      if (g) return g;
      const ports = m.dir === 'src' ? [p.sport] : m.dir === 'dst' ? [p.dport] : [p.sport, p.dport];
      const hit = m.ports.some(([lo, hi]) => ports.some((x) => inRange(x, lo, hi)));
      return yes(hit !== m.invert);
    }
    case 'comment': return yes(true);
    case 'conntrack': {
      // xt_conntrack: the state (with the NAT bits) first; without a connection nothing else can match
      if (m.ctstate.length) {
        const states: string[] = [p.ct, ...(p.ct === 'INVALID' || p.ct === 'UNTRACKED' ? [] : p.ctNat ?? [])];
        if (m.ctstate.some((s) => states.includes(s)) === m.invert) return yes(false);
      }
      if (p.ct === 'INVALID' || p.ct === 'UNTRACKED') return yes(m.ctstate.length > 0);
      if (ctTupleFields(m).length) throw new Error('the interpreter does not model connection tuples');
      if (m.dir && (m.dir === 'REPLY') !== !!p.ctReply) return yes(false);
      if (m.status && (((p.ctStatus ?? 0) & m.status.mask) !== 0) === m.status.invert) return yes(false);
      return yes(true);
    }
    case 'state': return yes(m.states.includes(p.ct) !== m.invert);
    case 'iprange': {
      for (const [r, v4, v6] of [[m.src, p.saddr, p.saddr6], [m.dst, p.daddr, p.daddr6]] as const) {
        if (!r) continue;
        const hit = isRange6(r) ? cmp6(v6!, r.from6) >= 0 && cmp6(v6!, r.to6) <= 0 : inRange(v4, r.from, r.to);
        if (hit === r.invert) return yes(false);
      }
      return yes(true);
    }
    case 'length': return yes(inRange(p.totlen, m.min, m.max) !== m.invert);
    case 'ecn': {
      if (m.ect && (((p.tos ?? 0) & 3) === m.ect.value) === m.ect.invert) return yes(false);
      if (m.ece || m.cwr) {
        // xt_ecn reads the TCP header at the transport offset, fragments included; no header, no match
        if (p.l4avail < 20) return yes(false);
        if (m.ece && ((p.tcpflags & 0x40) !== 0) === m.ece.invert) return yes(false);
        if (m.cwr && ((p.tcpflags & 0x80) !== 0) === m.cwr.invert) return yes(false);
      }
      return yes(true);
    }
    case 'addrtype': throw new Error('the model holds no routing table (-m addrtype)');
    case 'fibroute': throw new Error('the model holds no routing table (fib oif)');
    case 'hashlimit': throw new Error(`the model does not keep hashlimit tables (-m hashlimit --hashlimit-name ${m.name})`);
    case 'recent': throw new Error(`the model does not keep recent lists (-m recent --name ${m.name})`);
    case 'set': {
      if (!p.inSet) throw new Error(`the model cannot answer -m set ${m.name} without set contents`);
      return yes(p.inSet(m) !== m.invert);
    }
    case 'nftset': {
      const v = m.family === 4 ? BigInt((m.side === 'src' ? p.saddr : p.daddr) >>> 0) : words6ToBig(m.side === 'src' ? p.saddr6! : p.daddr6!);
      const hit = m.elements.some((e) => { const [lo, hi] = addrElementRange(e, m.family); return v >= lo && v <= hi; });
      return yes(hit !== m.invert);
    }
    case 'owner': {
      const o = p.owner ?? 'none';
      if (m.nft && typeof o !== 'object') return yes(false);
      const given = [m.socketExists, m.uid, m.gid].filter((x) => x !== undefined);
      if (o === 'none') return yes(given.every((x) => x!.invert));
      if (m.socketExists?.invert) return yes(false);
      if (o === 'nofile') return yes([m.uid, m.gid].every((x) => x === undefined || x.invert));
      const inside = (r: { min: number; max: number; invert: boolean } | undefined, v: number): boolean => !r || ((v >= r.min && v <= r.max) !== r.invert);
      return yes(inside(m.uid, o.uid) && inside(m.gid, o.gid));
    }
    case 'tcpmss': {
      if (m.nft) {
        const v = p.proto === 6 && p.fragoff === 0 && p.th ? nftTcpMssOf(p.th) : 'none';
        return yes(v !== 'none' && (v >= m.min && v <= m.max) !== m.invert);
      }
      const v = p.mss ?? 'none';
      if (v === 'bad') return { kind: 'hotdrop' };
      return yes((v !== 'none' && v >= m.min && v <= m.max) !== m.invert);
    }
    case 'mac': return yes(!!p.macSource && (p.macSource.every((b, i) => b === m.addr[i]) !== m.invert));
    case 'connmark':
      if (p.ct === 'INVALID' || p.ct === 'UNTRACKED') return yes(false);
      return yes((((p.ctMark ?? 0) & m.mask) >>> 0 === m.value) !== m.invert);
    case 'mark': return yes((((p.mark ?? 0) & m.mask) >>> 0 === m.value) !== m.invert);
    case 'pkttype': return yes(((p.pkttype ?? 0) === m.type) !== m.invert);
    case 'dscp': return yes((((p.tos ?? 0) >> 2) === m.value) !== m.invert);
    case 'tos': return yes((((p.tos ?? 0) & m.mask) === m.value) !== m.invert);
    case 'ifindex': {
      const idx = (m.dir === 'in' ? p.inIndex : p.outIndex) ?? 0;
      return yes(m.indexes.includes(idx) !== m.invert);
    }
    case 'payload': {
      const buf = m.base === 'th' ? p.th : p.nh;
      if (!buf || (m.base === 'th' && p.l4avail < m.offset + m.size) || buf.length < m.offset + m.size) return yes(false);
      const raw = m.size === 1 ? buf[m.offset]! : m.size === 2 ? buf.readUInt16BE(m.offset) : buf.readUInt32BE(m.offset);
      const v = ((raw >>> m.shift) & m.mask) >>> 0;
      return yes(m.ranges.some(([lo, hi]) => v >= lo && v <= hi) !== m.invert);
    }
    case 'nexthdr': return yes(m.ranges.some(([lo, hi]) => (p.nexthdr ?? 0) >= lo && (p.nexthdr ?? 0) <= hi) !== m.invert);
    case 'quota': {
      // the bytes counted, then compared (nft_overquota: consumed > quota)
      const consumed = (state.get(m) ?? m.used) + p.skblen;
      state.set(m, consumed);
      return yes((consumed > m.bytes) === m.over);
    }
    case 'limit': {
      const left = state.get(m) ?? m.burst;
      state.set(m, Math.max(0, left - 1));
      return yes((left > 0) !== !!m.over);
    }
    case 'statistic': {
      if (m.mode === 'random') {
        if (m.probability !== 0 && m.probability !== 0x80000000) throw new Error('a random statistic has no single answer');
        return yes((m.probability !== 0) !== m.invert);
      }
      const old = state.get(m) ?? m.every - m.packet;
      const next = old === m.every ? 0 : old + 1;
      state.set(m, next);
      return yes((next === 0) !== m.invert);
    }
    case 'ttl': case 'hl': {
      const v = m.op === 'eq' ? (p.ttl === m.value) !== m.invert : m.op === 'lt' ? p.ttl < m.value : p.ttl > m.value;
      return yes(v);
    }
  }
}

function ruleStep(r: Rule, p: PacketView, state: MatchState): Step {
  const ip = r.ip;
  for (const [a, v, v6] of [[ip.src, p.saddr, p.saddr6], [ip.dst, p.daddr, p.daddr6]] as const) {
    if (!a) continue;
    const hit = isAddr6(a) ? eq6(and6(v6!, a.mask6), a.addr6) : ((v & a.mask) >>> 0) === a.addr;
    if (hit === a.invert) return { kind: 'nomatch' };
  }
  if (!ifaceOk(ip.in, p.in) || !ifaceOk(ip.out, p.out)) return { kind: 'nomatch' };
  if (ip.proto && p.saddr6) {
    if (p.noproto) return { kind: ip.proto.nft ? 'nomatch' : 'hotdrop' };
    if (ip.proto.num !== 0 && (p.proto === ip.proto.num) === ip.proto.invert) return { kind: 'nomatch' };
  } else if (ip.proto && ((p.proto === ip.proto.num) === ip.proto.invert)) return { kind: 'nomatch' };
  if (ip.frag && ((p.fragoff !== 0) === ip.frag.invert)) return { kind: 'nomatch' };
  for (const m of r.matches) {
    const s = matchStep(m, p, state);
    if (s.kind !== 'match') return s;
  }
  return { kind: 'match' };
}

type ChainResult = { kind: 'verdict'; d: Decision } | { kind: 'continue' };

/** Evaluate built-in chain `chain` for packet `p`; `onMatch` sees every rule that matched (as counters would). */
export function evaluate(t: Table, chain: BuiltinChain, p: PacketView, onMatch?: (r: Rule) => void, state: MatchState = new Map()): Decision {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const run = (name: string, depth: number): ChainResult => {
    if (depth > 64) throw new Error('chain nesting too deep');
    const c = byName.get(name)!;
    for (let i = 0; i < c.rules.length; i++) {
      const r = c.rules[i]!;
      const s = ruleStep(r, p, state);
      const by = `${name} rule ${i + 1}`;
      if (s.kind === 'hotdrop') return { kind: 'verdict', d: { verdict: 'DROP', by: `${by} (unparsable header)` } };
      if (s.kind === 'nomatch') continue;
      onMatch?.(r);
      const v = r.verdict;
      switch (v.kind) {
        case 'accept': return { kind: 'verdict', d: { verdict: 'ACCEPT', by } };
        case 'drop': return { kind: 'verdict', d: { verdict: 'DROP', by } };
        case 'return': return { kind: 'continue' };
        case 'none': case 'log': break;
        case 'reject': return { kind: 'verdict', d: { verdict: 'DROP', by: `${by} (REJECT ${v.with})` } };
        case 'jump': {
          const res = run(v.chain, depth + 1);
          if (res.kind === 'verdict') return res;
          break;
        }
        case 'goto': return run(v.chain, depth + 1);
      }
    }
    return { kind: 'continue' };
  };
  const res = run(chain, 0);
  if (res.kind === 'verdict') return res.d;
  const policy = byName.get(chain)!.policy ?? 'ACCEPT';
  return { verdict: policy, by: `${chain} policy` };
}
