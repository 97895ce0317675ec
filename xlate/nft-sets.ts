/**
 * nft named sets, pure: a set's declaration (`type`, `flags`, `elements`),
 * its elements kept as nft keeps them (canonical values; with `flags
 * interval` sorted, overlapping and adjacent ranges merged), element
 * commands (`add`/`delete element`), and the text `nft list` prints for a
 * set, wrapped as nft wraps it. Rules use a set's elements through
 * `setItems` (xlate/nft.ts expands `@name` as it expands an anonymous set).
 *
 * Types: ipv4_addr, ipv6_addr, inet_service, inet_proto, ifname. Flags:
 * interval, constant. Anything else (timeouts, dynamic sets, maps,
 * concatenated types, counters per element) is refused by name.
 */
import type { NftItem } from '../grammar/nft-ast';
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6 } from './addr';
import { BpftablesError, type Where } from './errors';
import { type NameDb, protoNumber } from './names';

export type NftSetType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto' | 'ifname';
export const SET_TYPES: readonly NftSetType[] = ['ipv4_addr', 'ipv6_addr', 'inet_service', 'inet_proto', 'ifname'];

export interface NftSet {
  name: string; type: NftSetType; flags: ('interval' | 'constant')[];
  /** the elements as nft lists them (canonical text, in listing order) */
  elements: string[];
  handle: number; comment?: string;
  /** `auto-merge`: overlapping and adjacent elements of an interval set are joined (else overlaps are an error) */
  autoMerge?: boolean;
}

/** Elements per line of a listing before nft wraps (nft 1.0's rule, by type). */
const PER_LINE: Record<NftSetType, number> = { ipv4_addr: 2, inet_service: 5, inet_proto: 5, ipv6_addr: 1, ifname: 1 };
const WRAP = ',\n\t\t\t     ';

type Fail = (message: string, item: NftItem, unsupported?: boolean) => BpftablesError;

/** One element as an interval of values: `single` for a value written alone; `str` for a name (ifname). */
export interface Elem { lo: bigint; hi: bigint; single: boolean; str?: string }

export const words6ToBig = (w: number[]): bigint => w.reduce((acc, x) => (acc << 32n) | BigInt(x >>> 0), 0n);
export const bigToWords6 = (v: bigint): number[] => [3, 2, 1, 0].map((i) => Number((v >> BigInt(i * 32)) & 0xffffffffn));

/** The prefix length when [lo, hi] is exactly one CIDR block of a `bits`-bit address. */
export function blockBits(lo: bigint, hi: bigint, bits: number): number | undefined {
  const size = hi - lo + 1n;
  if (size <= 0n || (size & (size - 1n)) !== 0n || lo % size !== 0n) return undefined;
  return bits - (size.toString(2).length - 1);
}

/**
 * Elements as nft keeps them: sorted, overlapping ones merged, and adjacent ones too, except two single
 * values side by side unless `joinSingles` (an auto-merge named set joins them; an anonymous set does not).
 */
export function mergeElems(items: readonly Elem[], joinSingles: boolean): Elem[] {
  const sorted = [...items].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : a.hi < b.hi ? -1 : a.hi > b.hi ? 1 : 0));
  const out: Elem[] = [];
  for (const x of sorted) {
    const cur = out[out.length - 1];
    if (cur && (x.lo <= cur.hi || (x.lo === cur.hi + 1n && (joinSingles || !(cur.single && x.single))))) {
      if (x.hi > cur.hi || !x.single || !cur.single) out[out.length - 1] = { lo: cur.lo, hi: x.hi > cur.hi ? x.hi : cur.hi, single: false };
      continue;
    }
    out.push({ lo: x.lo, hi: x.hi, single: x.single, ...(x.str !== undefined ? { str: x.str } : {}) });
  }
  return out;
}

/** One element's value as an interval (addresses, ports, protocols) or a string (interface names). */
function parseElem(type: NftSetType, v: NftItem, interval: boolean, db: NameDb, fail: Fail): Elem {
  const text = v.kind === 'word' || v.kind === 'string' ? v.text : '';
  if (type === 'ifname') {
    if (v.kind !== 'word' && v.kind !== 'string') throw fail('syntax error, interface name expected', v);
    if (text.endsWith('*') && !text.endsWith('\\*')) throw fail('interface name wildcards in a named set', v, true);
    if (text === '' || text.length > 15) throw fail('interface name too long', v);
    return { lo: 0n, hi: 0n, single: true, str: text };
  }
  if (v.kind !== 'word') throw fail(`syntax error, ${type} expected`, v);
  if (text === '*') throw fail('the catch-all element *', v, true);
  const range = /^([^/]+)-([^/]+)$/.exec(text);
  const width = type === 'ipv4_addr' ? 32 : type === 'ipv6_addr' ? 128 : 0;
  const one = (t: string): bigint => {
    if (type === 'ipv4_addr') { const a = parseIpv4(t); if (a === undefined) throw fail(`Could not resolve hostname: ${t}`, v); return BigInt(a); }
    if (type === 'ipv6_addr') { const w = parseIpv6(t); if (!w) throw fail(`Could not resolve hostname: ${t}`, v); return words6ToBig(w); }
    if (type === 'inet_proto') {
      const n = /^\d+$/.test(t) ? Number(t) : protoNumber(t, db) ?? (t === 'comp' ? 108 : undefined);
      if (n === undefined || n > 255) throw fail(`Could not parse Internet protocol "${t}"`, v);
      return BigInt(n);
    }
    const n = /^\d+$/.test(t) ? Number(t) : db.service(t, 'tcp') ?? db.service(t, 'udp');
    if (n === undefined) throw fail('Could not resolve service: Servname not supported for ai_socktype', v);
    if (n > 65535) throw fail(`Value ${t} exceeds valid range 0-65535`, v);
    return BigInt(n);
  };
  if (range && !text.includes('::-') && (type !== 'ipv6_addr' || text.split('-').length === 2)) {
    if (!interval) throw fail(`you must add 'flags interval' to your set declaration if you want to add ranges (${text})`, v);
    const lo = one(range[1]!), hi = one(range[2]!);
    if (lo > hi) throw fail('Range has zero or negative size', v);
    return { lo, hi, single: lo === hi };
  }
  if (width && text.includes('/')) {
    if (!interval) throw fail(`you must add 'flags interval' to your set declaration if you want to add prefix elements (${text})`, v);
    const [addr, len] = text.split('/');
    const bits = /^\d+$/.test(len ?? '') ? Number(len) : NaN;
    if (!(bits >= 0 && bits <= width)) throw fail(`Could not resolve hostname: ${text}`, v);
    const host = (1n << BigInt(width - bits)) - 1n;
    const lo = one(addr!) & ~host & ((1n << BigInt(width)) - 1n);
    return { lo, hi: lo | host, single: bits === width };
  }
  const x = one(text);
  return { lo: x, hi: x, single: true };
}

function elemText(type: NftSetType, e: Elem, db: NameDb): string {
  if (type === 'ifname') return `"${e.str}"`;
  const width = type === 'ipv4_addr' ? 32 : type === 'ipv6_addr' ? 128 : 0;
  const fmt = (x: bigint): string => (type === 'ipv4_addr' ? fmtIpv4(Number(x)) : type === 'ipv6_addr' ? fmtIpv6(bigToWords6(x))
    : type === 'inet_proto' ? db.protoByNumber(Number(x)) ?? String(x) : String(x));
  if (e.lo === e.hi && e.single) return fmt(e.lo);
  const bits = width ? blockBits(e.lo, e.hi, width) : undefined;
  return bits !== undefined ? `${fmt(e.lo)}/${bits}` : e.lo === e.hi ? fmt(e.lo) : `${fmt(e.lo)}-${fmt(e.hi)}`;
}

/** The elements a set holds after adding `values` (nft's order: sorted by value; names by their text). */
export function addElements(set: NftSet, values: NftItem[], db: NameDb, fail: Fail): string[] {
  const interval = set.flags.includes('interval');
  const old = set.elements.map((t) => parseElem(set.type, textItem(t), interval, db, fail));
  const added = values.map((v) => ({ v, e: parseElem(set.type, v, interval, db, fail) }));
  if (interval && !set.autoMerge) {
    // without auto-merge the kernel keeps intervals apart: one that overlaps another is refused
    const all = [...old.map((e) => ({ v: undefined as NftItem | undefined, e })), ...added];
    for (const [i, a] of all.entries()) {
      const clash = all.find((b, j) => j !== i && !(a.e.lo === b.e.lo && a.e.hi === b.e.hi) && a.e.lo <= b.e.hi && b.e.lo <= a.e.hi);
      if (clash && a.v) throw fail('conflicting intervals specified', a.v);
    }
  }
  return canonical(set.type, [...old, ...added.map((x) => x.e)], interval, !!set.autoMerge, db);
}

/** The elements after deleting `values`; an element the set does not hold is nft's error, unless `missingOk` (destroy). */
export function deleteElements(set: NftSet, values: NftItem[], db: NameDb, fail: Fail, missingOk = false): string[] {
  const interval = set.flags.includes('interval');
  const gone = new Set(values.map((v) => {
    const t = elemText(set.type, parseElem(set.type, v, interval, db, fail), db);
    if (!set.elements.includes(t) && !missingOk) throw fail('Could not process rule: No such file or directory', v);
    return t;
  }));
  return set.elements.filter((e) => !gone.has(e));
}

function canonical(type: NftSetType, elems: Elem[], interval: boolean, autoMerge: boolean, db: NameDb): string[] {
  if (type === 'ifname') return [...new Set(elems.map((e) => e.str!))].sort().map((s) => `"${s}"`);
  const byStart = (a: Elem, b: Elem): number => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0);
  const merged = interval && autoMerge ? mergeElems(elems, true) : [...new Map(elems.map((e) => [`${e.lo}-${e.hi}`, e])).values()].sort(byStart);
  return merged.map((e) => elemText(type, e, db));
}

/** A canonical element back as an item, for rules that use the set. */
export function textItem(t: string, where: Where = {}): NftItem {
  const quoted = t.startsWith('"') && t.endsWith('"');
  return quoted ? { kind: 'string', text: t.slice(1, -1), line: where.line ?? 1, col: where.col ?? 1 } : { kind: 'word', text: t, line: where.line ?? 1, col: where.col ?? 1 };
}

/** `set NAME { ... }` as `nft list` prints it, with `# handle N` under -a. */
export function setText(s: NftSet, handles: boolean, terse = false): string {
  let out = `\tset ${s.name} {${handles ? ` # handle ${s.handle}` : ''}\n\t\ttype ${s.type}\n`;
  if (s.flags.length) out += `\t\tflags ${s.flags.join(',')}\n`;
  if (s.autoMerge) out += '\t\tauto-merge\n';
  if (s.comment !== undefined) out += `\t\tcomment "${s.comment}"\n`;
  if (s.elements.length && !terse) {
    const n = PER_LINE[s.type];
    let body = '';
    s.elements.forEach((e, i) => { body += (i === 0 ? '' : i % n === 0 ? WRAP : ', ') + e; });
    out += `\t\telements = { ${body} }\n`;
  }
  return `${out}\t}\n`;
}
