/**
 * A reference interpreter of the IR: what a ruleset decides for one packet,
 * following iptables' semantics step by step (IP part, matches in order,
 * hotdrop, jump/goto/RETURN, policies). It is independent of the code
 * generator, so tests can check generated programs against it, and the demo
 * uses it to say what the rules decide.
 */
import type { BuiltinChain, CtState, IfaceMatch, Match, Rule, Table } from './ir';

export interface PacketView {
  saddr: number; daddr: number; proto: number; ttl: number; totlen: number; fragoff: number;
  skblen: number; l4avail: number; sport: number; dport: number; tcpflags: number; icmptype: number; icmpcode: number;
  in: string; out: string; ct: CtState;
}

/** Decode an IPv4 packet as the hook sees it. */
export function viewPacket(p: Buffer, iface: { in?: string; out?: string }, ct: CtState = 'INVALID'): PacketView {
  const thoff = (p[0]! & 0xf) * 4;
  const fragoff = p.readUInt16BE(6) & 0x1fff;
  const l4avail = fragoff === 0 ? Math.max(0, p.length - thoff) : 0;
  const at = (o: number, n: 1 | 2): number => (l4avail >= o + n ? (n === 1 ? p[thoff + o]! : p.readUInt16BE(thoff + o)) : 0);
  return {
    saddr: p.readUInt32BE(12), daddr: p.readUInt32BE(16), proto: p[9]!, ttl: p[8]!, totlen: p.readUInt16BE(2), fragoff,
    skblen: p.length, l4avail, sport: at(0, 2), dport: at(2, 2), tcpflags: at(13, 1), icmptype: at(0, 1), icmpcode: at(1, 1),
    in: iface.in ?? '', out: iface.out ?? '', ct,
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

function l4(p: PacketView, need: number, evil: boolean): Step | null {
  if (p.fragoff !== 0) return evil && p.fragoff === 1 ? { kind: 'hotdrop' } : { kind: 'nomatch' };
  if (p.l4avail < need) return { kind: 'hotdrop' };
  return null;
}

function matchStep(m: Match, p: PacketView): Step {
  const yes = (b: boolean): Step => ({ kind: b ? 'match' : 'nomatch' });
  switch (m.kind) {
    case 'tcp': case 'udp': {
      const g = l4(p, m.kind === 'tcp' ? 20 : 8, m.kind === 'tcp');
      if (g) return g;
      if (m.sport && inRange(p.sport, ...m.sport.range) === m.sport.invert) return yes(false);
      if (m.dport && inRange(p.dport, ...m.dport.range) === m.dport.invert) return yes(false);
      if (m.kind === 'tcp' && m.flags && (((p.tcpflags & m.flags.mask) === m.flags.comp) === m.flags.invert)) return yes(false);
      return yes(true);
    }
    case 'icmp': {
      const g = l4(p, 8, false);
      if (g) return g;
      const hit = m.type === 0xff || (p.icmptype === m.type && inRange(p.icmpcode, m.codeMin, m.codeMax));
      return yes(hit !== m.invert);
    }
    case 'multiport': {
      const g = l4(p, 4, false);
      if (g) return g;
      const ports = m.dir === 'src' ? [p.sport] : m.dir === 'dst' ? [p.dport] : [p.sport, p.dport];
      const hit = m.ports.some(([lo, hi]) => ports.some((x) => inRange(x, lo, hi)));
      return yes(hit !== m.invert);
    }
    case 'comment': return yes(true);
    case 'conntrack': return yes(m.ctstate.includes(p.ct) !== m.invert);
    case 'state': return yes(m.states.includes(p.ct) !== m.invert);
    case 'iprange': {
      if (m.src && inRange(p.saddr, m.src.from, m.src.to) === m.src.invert) return yes(false);
      if (m.dst && inRange(p.daddr, m.dst.from, m.dst.to) === m.dst.invert) return yes(false);
      return yes(true);
    }
    case 'length': return yes(inRange(p.totlen, m.min, m.max) !== m.invert);
    case 'ttl': {
      const v = m.op === 'eq' ? (p.ttl === m.value) !== m.invert : m.op === 'lt' ? p.ttl < m.value : p.ttl > m.value;
      return yes(v);
    }
  }
}

function ruleStep(r: Rule, p: PacketView): Step {
  const ip = r.ip;
  for (const [a, v] of [[ip.src, p.saddr], [ip.dst, p.daddr]] as const) {
    if (a && ((((v & a.mask) >>> 0) === a.addr) === a.invert)) return { kind: 'nomatch' };
  }
  if (!ifaceOk(ip.in, p.in) || !ifaceOk(ip.out, p.out)) return { kind: 'nomatch' };
  if (ip.proto && ((p.proto === ip.proto.num) === ip.proto.invert)) return { kind: 'nomatch' };
  if (ip.frag && ((p.fragoff !== 0) === ip.frag.invert)) return { kind: 'nomatch' };
  for (const m of r.matches) {
    const s = matchStep(m, p);
    if (s.kind !== 'match') return s;
  }
  return { kind: 'match' };
}

type ChainResult = { kind: 'verdict'; d: Decision } | { kind: 'continue' };

/** Evaluate built-in chain `chain` for packet `p`; `onMatch` sees every rule that matched (as counters would). */
export function evaluate(t: Table, chain: BuiltinChain, p: PacketView, onMatch?: (r: Rule) => void): Decision {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const run = (name: string, depth: number): ChainResult => {
    if (depth > 64) throw new Error('chain nesting too deep');
    const c = byName.get(name)!;
    for (let i = 0; i < c.rules.length; i++) {
      const r = c.rules[i]!;
      const s = ruleStep(r, p);
      const by = `${name} rule ${i + 1}`;
      if (s.kind === 'hotdrop') return { kind: 'verdict', d: { verdict: 'DROP', by: `${by} (unparsable header)` } };
      if (s.kind === 'nomatch') continue;
      onMatch?.(r);
      const v = r.verdict;
      switch (v.kind) {
        case 'accept': return { kind: 'verdict', d: { verdict: 'ACCEPT', by } };
        case 'drop': return { kind: 'verdict', d: { verdict: 'DROP', by } };
        case 'return': return { kind: 'continue' };
        case 'none': break;
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
