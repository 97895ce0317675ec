/**
 * What the compiler and the engine ask of a whole table, found in one walk
 * (a big table, run cold, costs milliseconds per walk). Packed rules
 * (xlate/packed.ts) answer from their columns: their objects are not built.
 * Pure.
 */
import type { Match, Table } from './ir';
import { PackedRule, packedRows, PF } from './packed';

export interface TableFacts {
  /**
   * every match of every rule, except that packed rules, whose matches are
   * tcp or udp ports, give one match of each kind they use (the questions
   * asked of this list are by kind)
   */
  matches: Match[];
  /** some match reads conntrack (conntrack, state, connmark) */
  conntrack: boolean;
  /** some rule hands packets to logd (LOG, REJECT) */
  events: boolean;
  /** some rule reads device names: -i, -o, addrtype's interface limits, or a LOG/REJECT record */
  ifaces: boolean;
}

const PACKED_TCP: Match = Object.freeze({ kind: 'tcp' });
const PACKED_UDP: Match = Object.freeze({ kind: 'udp' });

export function tableFacts(t: Table): TableFacts {
  const matches: Match[] = [];
  let conntrack = false, events = false, ifaces = false, tcp = false, udp = false;
  for (const c of t.chains) {
    const rows = packedRows(c);
    if (rows) {
      const flags = rows.block.flags;
      for (let i = rows.from; i < rows.to; i++) {
        const f = flags[i]!;
        if (f & (PF.IN | PF.OUT)) ifaces = true;
        if (f & PF.L4) { if (f & PF.UDP) udp = true; else tcp = true; }
      }
      continue;
    }
    // indexed: a for-of over a big array allocates an iterator result per element until V8 optimizes it
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r instanceof PackedRule) {
        const f = r.block.flags[r.index]!;
        if (f & (PF.IN | PF.OUT)) ifaces = true;
        if (f & PF.L4) { if (f & PF.UDP) udp = true; else tcp = true; }
        continue;
      }
      const v = r.verdict.kind;
      if (v === 'log' || v === 'reject') { events = true; ifaces = true; }
      if (r.ip.in || r.ip.out) ifaces = true;
      for (const m of r.matches) {
        matches.push(m);
        if (m.kind === 'conntrack' || m.kind === 'state' || m.kind === 'connmark') conntrack = true;
        else if ((m.kind === 'addrtype' && (m.limitIn || m.limitOut || m.fib)) || m.kind === 'fibroute') ifaces = true;
      }
    }
  }
  if (tcp) matches.push(PACKED_TCP);
  if (udp) matches.push(PACKED_UDP);
  return { matches, conntrack, events, ifaces };
}
