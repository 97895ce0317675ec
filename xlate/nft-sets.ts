/**
 * nft named sets, pure: a set's declaration (`type`, `flags`, `elements`),
 * its elements kept as nft keeps them (canonical values; with `flags
 * interval` sorted, overlapping and adjacent ranges merged), element
 * commands (`add`/`delete element`), and the text `nft list` prints for a
 * set, wrapped as nft wraps it. Rules use a set's elements through
 * `setItems` (xlate/nft.ts expands `@name` as it expands an anonymous set).
 *
 * Types: ipv4_addr, ipv6_addr, inet_service, inet_proto, ifname, and
 * concatenations of them (`ipv4_addr . inet_service`). Flags: interval,
 * constant. Anything else (timeouts, dynamic sets, maps, counters per
 * element) is refused by name.
 */
import type { NftItem } from '../grammar/nft-ast';
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6, prefixMask4, prefixMask6 } from './addr';
import type { AddrMatch, Family, Ip6Range, IpRange } from './ir';
import { BpftablesError, type Where } from './errors';
import { type NameDb, nftServiceNumber, protoNumber } from './names';

export type NftSetType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto' | 'ifname';
export const SET_TYPES: readonly NftSetType[] = ['ipv4_addr', 'ipv6_addr', 'inet_service', 'inet_proto', 'ifname'];

export interface NftSet {
  name: string; type: NftSetType; flags: ('interval' | 'constant')[];
  /** a concatenated type (`ipv4_addr . inet_service`): its components (`type` is the first); elements are `a . b` */
  types?: NftSetType[];
  /** a verdict map (`map NAME { type K : verdict; ... }`): elements are `key : verdict` */
  verdict?: true;
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

/** What is wrong with an address element: a part that is no address, a range that ends before it starts, a range or prefix where only addresses may be. */
export type AddrFault = { fault: 'address'; part: string } | { fault: 'empty' } | { fault: 'interval'; form: 'ranges' | 'prefix elements' };

/**
 * An address element as nft reads and lists it (`a`, `a/len`, `a-b`) as the
 * interval of addresses it holds (`interval` false: ranges and prefixes are
 * a fault). `err` makes the error a fault throws: each reader words it its
 * own way.
 */
export function addrElem(text: string, family: 4 | 6, interval: boolean, err: (f: AddrFault) => Error): Elem {
  const width = family === 4 ? 32 : 128;
  const one = (t: string): bigint => {
    const v = family === 4 ? parseIpv4(t) : parseIpv6(t);
    if (v === undefined) throw err({ fault: 'address', part: t });
    return typeof v === 'number' ? BigInt(v) : words6ToBig(v);
  };
  const range = /^([^/]+)-([^/]+)$/.exec(text);
  if (range && (family === 4 || text.split('-').length === 2)) {
    if (!interval) throw err({ fault: 'interval', form: 'ranges' });
    const lo = one(range[1]!), hi = one(range[2]!);
    if (lo > hi) throw err({ fault: 'empty' });
    return { lo, hi, single: lo === hi };
  }
  if (!text.includes('/')) { const x = one(text); return { lo: x, hi: x, single: true }; }
  if (!interval) throw err({ fault: 'interval', form: 'prefix elements' });
  const [addr, len] = text.split('/');
  const bits = /^\d+$/.test(len ?? '') ? Number(len) : NaN;
  if (!(bits >= 0 && bits <= width)) throw err({ fault: 'address', part: text });
  const host = (1n << BigInt(width - bits)) - 1n;
  const lo = one(addr!) & ~host & ((1n << BigInt(width)) - 1n);
  return { lo, hi: lo | host, single: bits === width };
}

/**
 * An interval of addresses as the IR tests it: always as a range (an
 * iprange side), and as a prefix (the IP part's address) when it is one.
 */
export function addrIntervalTest(lo: bigint, hi: bigint, fam: Family): { prefix?: AddrMatch; range: IpRange | Ip6Range } {
  const bits = blockBits(lo, hi, fam === 4 ? 32 : 128);
  const range = fam === 4 ? { from: Number(lo), to: Number(hi), invert: false } : { from6: bigToWords6(lo), to6: bigToWords6(hi), invert: false };
  if (bits === undefined) return { range };
  return { range, prefix: fam === 4 ? { addr: Number(lo), mask: prefixMask4(bits), invert: false } : { addr6: bigToWords6(lo), mask6: prefixMask6(bits), invert: false } };
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
  if (type === 'ipv4_addr' || type === 'ipv6_addr') {
    return addrElem(text, type === 'ipv4_addr' ? 4 : 6, interval, (f) => fail(f.fault === 'address' ? `Could not resolve hostname: ${f.part}`
      : f.fault === 'empty' ? 'Range has zero or negative size'
        : `you must add 'flags interval' to your set declaration if you want to add ${f.form} (${text})`, v));
  }
  const one = (t: string): bigint => {
    if (type === 'inet_proto') {
      const n = /^\d+$/.test(t) ? Number(t) : protoNumber(t, db) ?? (t === 'comp' ? 108 : undefined);
      if (n === undefined || n > 255) throw fail(`Could not parse Internet protocol "${t}"`, v);
      return BigInt(n);
    }
    const n = nftServiceNumber(t, db);
    if (n === undefined) throw fail('Could not resolve service: Servname not supported for ai_socktype', v);
    if (n > 65535) throw fail('Service out of range', v);
    return BigInt(n);
  };
  const range = /^([^/]+)-([^/]+)$/.exec(text);
  if (range) {
    if (!interval) throw fail(`you must add 'flags interval' to your set declaration if you want to add ranges (${text})`, v);
    const lo = one(range[1]!), hi = one(range[2]!);
    if (lo > hi) throw fail('Range has zero or negative size', v);
    return { lo, hi, single: lo === hi };
  }
  const x = one(text);
  return { lo: x, hi: x, single: true };
}

/**
 * An element of an address set as nft lists it (elemText's `a`, `a/len`,
 * `a-b`): the first and last address it holds. Throws on text elemText
 * never writes.
 */
export function addrElementRange(text: string, family: 4 | 6): [bigint, bigint] {
  const e = addrElem(text, family, true, () => new Error(`not an IPv${family} set element: ${text}`));
  return [e.lo, e.hi];
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

/** Flat element items (`a . b c . d`, commas gone) as the elements of a concatenation, one group each. */
function tuples(values: NftItem[], n: number, fail: Fail): NftItem[][] {
  const out: NftItem[][] = [];
  for (let i = 0; i < values.length;) {
    const g = [values[i]!];
    i++;
    while (values[i]?.kind === 'word' && (values[i] as { text: string }).text === '.') { if (!values[i + 1]) break; g.push(values[i + 1]!); i += 2; }
    if (g.length !== n) throw fail(`syntax error, an element of ${n} values joined by . expected`, g[0]!);
    out.push(g);
  }
  return out;
}

/** The key bytes of one element of an anonymous concatenation, from its components' canonical texts (undefined: a type without a known layout). */
export function anonymousKey(types: (NftSetType | 'ct_state' | 'mark' | undefined)[], texts: string[], db: NameDb): Buffer | undefined {
  const bufs: Buffer[] = [];
  const fail: Fail = (m) => new BpftablesError(m, 2);
  for (const [i, t] of types.entries()) {
    if (t === undefined) return undefined;
    if (t === 'ct_state' || t === 'mark') {
      // a 32-bit value in host order: the state bits (new 8, established 2, ...) or the mark
      const v = t === 'mark' ? Number(texts[i]) : texts[i]!.split(',').reduce((m, x) => m | (CT_BITS[x] ?? NaN), 0);
      if (!Number.isFinite(v)) return undefined;
      const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); bufs.push(b);
      continue;
    }
    try { bufs.push(tupleBytes([t], [parseElem(t, textItem(texts[i]!), true, db, fail)])); } catch { return undefined; }
  }
  return Buffer.concat(bufs);
}
const CT_BITS: Record<string, number> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };

/** One element of a concatenated set: its components as intervals, and its canonical text. */
function parseTuple(set: NftSet, g: NftItem[], db: NameDb, fail: Fail): { parts: Elem[]; text: string } {
  const interval = set.flags.includes('interval');
  const parts = g.map((v, i) => parseElem(set.types![i]!, v, interval, db, fail));
  return { parts, text: parts.map((e, i) => elemText(set.types![i]!, e, db)).join(' . ') };
}

/**
 * A concatenation's key as the kernel holds it: each component in its own
 * 32-bit registers (addresses and ports in network order, an interface name
 * as 16 bytes), padded to 4 bytes.
 */
function tupleBytes(types: NftSetType[], parts: Elem[]): Buffer {
  return Buffer.concat(parts.map((e, i) => {
    const t = types[i]!;
    if (t === 'ifname') { const b = Buffer.alloc(16); b.write(e.str!, 'latin1'); return b; }
    const width = t === 'ipv4_addr' ? 4 : t === 'ipv6_addr' ? 16 : t === 'inet_service' ? 2 : 1;
    const b = Buffer.alloc(Math.ceil(width / 4) * 4);
    for (let k = 0; k < width; k++) b[k] = Number((e.lo >> BigInt(8 * (width - 1 - k))) & 0xffn);
    return b;
  }));
}

/** nft's order of interface names: their 16 bytes as a host-order number (compareKeys), so the last letters weigh most. */
export function nameOrder(a: string, b: string): number {
  const buf = (x: string): Buffer => { const out = Buffer.alloc(16); out.write(x, 'latin1'); return out; };
  return compareKeys(buf(a), buf(b));
}

/**
 * nft's listing order of a hash set of concatenations: it sorts the keys as
 * numbers read in host byte order (little-endian here), so the last byte of
 * the key weighs most.
 */
export function compareKeys(a: Buffer, b: Buffer): number {
  for (let i = Math.max(a.length, b.length) - 1; i >= 0; i--) {
    const x = a[i] ?? 0, y = b[i] ?? 0;
    if (x !== y) return x - y;
  }
  return 0;
}

const tupleOverlaps = (a: Elem[], b: Elem[]): boolean => a.every((x, i) => (x.str !== undefined ? x.str === b[i]!.str : x.lo <= b[i]!.hi && b[i]!.lo <= x.hi));

/**
 * A concatenated set after adding elements: a hash set in nft's listing
 * order (compareKeys), an interval set in the order they came (as the
 * kernel's pipapo lists them). An element overlapping another
 * (but for the same one) is the kernel's "File exists".
 */
function addTuples(set: NftSet, values: NftItem[], db: NameDb, fail: Fail): string[] {
  const fromText = (t: string): NftItem[] => t.split(' . ').map((x) => textItem(x));
  const old = set.elements.map((t) => parseTuple(set, fromText(t), db, fail));
  const added = tuples(values, set.types!.length, fail).map((g) => ({ g, ...parseTuple(set, g, db, fail) }));
  const all: { parts: Elem[]; text: string; g?: NftItem[] }[] = [...old];
  for (const a of added) {
    if (all.some((x) => x.text === a.text)) continue;
    if (all.some((x) => tupleOverlaps(x.parts, a.parts))) throw fail('Could not process rule: File exists', a.g[0]!);
    all.push(a);
  }
  if (!set.flags.includes('interval')) {
    const keyed = all.map((x) => ({ x, key: tupleBytes(set.types!, x.parts) }));
    keyed.sort((a, b) => compareKeys(a.key, b.key));
    return keyed.map((k) => k.x.text);
  }
  return all.map((x) => x.text);
}

const VERDICT = /^(?:accept|drop|continue|return|(?:jump|goto) \S+)$/;

/** A verdict map's elements, split at commas: each KEY : VERDICT (or just KEY, for delete). */
function mapElements(values: NftItem[], fail: Fail, keysOnly: boolean): { key: NftItem; verdict?: string }[] {
  const groups: NftItem[][] = [[]];
  for (const v of values) { if (v.kind === 'comma') groups.push([]); else groups[groups.length - 1]!.push(v); }
  return groups.filter((g) => g.length).map((g) => {
    const colon = g.findIndex((x) => x.kind === 'word' && x.text === ':');
    const key = g[0]!;
    if (colon < 0) {
      if (!keysOnly || g.length !== 1) throw fail('syntax error, KEY : VERDICT expected in a verdict map', key);
      return { key };
    }
    const verdict = g.slice(colon + 1).map((x) => (x.kind === 'word' || x.kind === 'string' ? x.text : '')).join(' ');
    if (colon !== 1 || !VERDICT.test(verdict)) throw fail('syntax error, KEY : VERDICT expected in a verdict map', key);
    return { key, verdict };
  });
}

/** A verdict map after adding elements: keys in order, one verdict each (another verdict for a key there: File exists). */
function addMapElements(set: NftSet, values: NftItem[], db: NameDb, fail: Fail): string[] {
  const interval = set.flags.includes('interval');
  const byKey = new Map<string, { e: Elem; verdict: string }>();
  for (const t of set.elements) {
    const i = t.lastIndexOf(' : ');
    byKey.set(t.slice(0, i), { e: parseElem(set.type, textItem(t.slice(0, i)), interval, db, fail), verdict: t.slice(i + 3) });
  }
  const existing = new Set(byKey.keys());
  for (const { key, verdict } of mapElements(values, fail, false)) {
    const e = parseElem(set.type, key, interval, db, fail);
    const k = elemText(set.type, e, db);
    const had = byKey.get(k);
    if (had) { if (had.verdict !== verdict) throw fail('Could not process rule: File exists', key); continue; }
    const clash = [...byKey.entries()].find(([, x]) => x.e.str === undefined && x.e.lo <= e.hi && e.lo <= x.e.hi);
    if (clash) throw fail(existing.has(clash[0]) ? 'interval overlaps with an existing one' : 'conflicting intervals specified', key);
    byKey.set(k, { e, verdict: verdict! });
  }
  const sorted = [...byKey.entries()].sort(([, x], [, y]) => (x.e.str !== undefined ? nameOrder(x.e.str, y.e.str!) : x.e.lo < y.e.lo ? -1 : x.e.lo > y.e.lo ? 1 : 0));
  return sorted.map(([k, x]) => `${k} : ${x.verdict}`);
}

/** The elements a set holds after adding `values` (nft's order: sorted by value; names by their text). */
export function addElements(set: NftSet, items: NftItem[], db: NameDb, fail: Fail): string[] {
  if (set.verdict) return addMapElements(set, items, db, fail);
  const values = items.filter((v) => v.kind !== 'comma');
  if (set.types) return addTuples(set, values, db, fail);
  const interval = set.flags.includes('interval');
  const old = set.elements.map((t) => parseElem(set.type, textItem(t), interval, db, fail));
  const added = values.map((v) => ({ v, e: parseElem(set.type, v, interval, db, fail) }));
  if (interval && !set.autoMerge) {
    // without auto-merge the kernel keeps intervals apart: one that overlaps another is refused, in nft's
    // words for an element there already and for one of the same command (the later one named)
    const clashes = (a: Elem, b: Elem): boolean => !(a.lo === b.lo && a.hi === b.hi) && a.lo <= b.hi && b.lo <= a.hi;
    // the pairwise walk that names the element only when some two overlap (it is quadratic: 100k elements, minutes)
    if (anyOverlap([...old, ...added.map((x) => x.e)])) for (const [i, a] of added.entries()) {
      if (old.some((b) => clashes(a.e, b))) throw fail('interval overlaps with an existing one', a.v);
      if (added.slice(0, i).some((b) => clashes(a.e, b.e))) throw fail('conflicting intervals specified', a.v);
    }
  }
  return canonical(set.type, [...old, ...added.map((x) => x.e)], interval, !!set.autoMerge, db);
}

/** The elements after deleting `values`; an element the set does not hold is nft's error, unless `missingOk` (destroy). */
export function deleteElements(set: NftSet, items: NftItem[], db: NameDb, fail: Fail, missingOk = false): string[] {
  const interval = set.flags.includes('interval');
  if (set.verdict) {
    const gone = new Set(mapElements(items, fail, true).map(({ key }) => {
      const k = elemText(set.type, parseElem(set.type, key, interval, db, fail), db);
      if (!set.elements.some((e) => e.startsWith(`${k} : `)) && !missingOk) throw fail('Could not process rule: No such file or directory', key);
      return k;
    }));
    return set.elements.filter((e) => !gone.has(e.slice(0, e.lastIndexOf(' : '))));
  }
  const values = items.filter((v) => v.kind !== 'comma');
  const held = new Set(set.elements);
  if (set.types) {
    const gone = new Set(tuples(values, set.types.length, fail).map((g) => {
      const t = parseTuple(set, g, db, fail).text;
      if (!held.has(t) && !missingOk) throw fail('Could not process rule: No such file or directory', g[0]!);
      return t;
    }));
    return set.elements.filter((e) => !gone.has(e));
  }
  const gone = new Set(values.map((v) => {
    const t = elemText(set.type, parseElem(set.type, v, interval, db, fail), db);
    if (!held.has(t) && !missingOk) throw fail('Could not process rule: No such file or directory', v);
    return t;
  }));
  return set.elements.filter((e) => !gone.has(e));
}

function canonical(type: NftSetType, elems: Elem[], interval: boolean, autoMerge: boolean, db: NameDb): string[] {
  if (type === 'ifname') return [...new Set(elems.map((e) => e.str!))].sort(nameOrder).map((s) => `"${s}"`);
  const merged = interval && autoMerge ? mergeElems(elems, true) : distinctByStart(elems);
  return merged.map((e) => elemText(type, e, db));
}

/** Do two of the intervals overlap (identical ones aside)? */
function anyOverlap(elems: Elem[]): boolean {
  const sorted = distinctByStart(elems);
  for (let k = 1; k < sorted.length; k++) if (sorted[k]!.lo <= sorted[k - 1]!.hi) return true;
  return false;
}

/**
 * Elements sorted by their first value, each interval once (the first
 * given of equal ones). Bounds of 32 bits or fewer are compared as numbers
 * (a set of 100k addresses: BigInt comparisons and string keys cost more
 * than the rest of its evaluation).
 */
function distinctByStart(elems: Elem[]): Elem[] {
  const small = elems.every((e) => e.hi <= 0xffffffffn);
  const lo = elems.map((e) => (small ? Number(e.lo) : e.lo)), hi = elems.map((e) => (small ? Number(e.hi) : e.hi));
  const cmp = (x: number | bigint, y: number | bigint): number => (x < y ? -1 : x > y ? 1 : 0);
  const order = elems.map((_, i) => i).sort((a, b) => cmp(lo[a]!, lo[b]!) || cmp(hi[a]!, hi[b]!) || a - b);
  return order.filter((k, j) => j === 0 || lo[k] !== lo[order[j - 1]!] || hi[k] !== hi[order[j - 1]!]).map((k) => elems[k]!);
}

/** A canonical element back as an item, for rules that use the set. */
export function textItem(t: string, where: Where = {}): NftItem {
  const quoted = t.startsWith('"') && t.endsWith('"');
  return quoted ? { kind: 'string', text: t.slice(1, -1), line: where.line ?? 1, col: where.col ?? 1 } : { kind: 'word', text: t, line: where.line ?? 1, col: where.col ?? 1 };
}

/** `set NAME { ... }` as `nft list` prints it, with `# handle N` under -a. */
/** A set's type as nft writes it. */
export const setTypeText = (s: NftSet): string => (s.types ? s.types.join(' . ') : s.type) + (s.verdict ? ' : verdict' : '');

export function setText(s: NftSet, handles: boolean, terse = false): string {
  let out = `\t${s.verdict ? 'map' : 'set'} ${s.name} {${handles ? ` # handle ${s.handle}` : ''}\n\t\ttype ${setTypeText(s)}\n`;
  if (s.flags.length) out += `\t\tflags ${s.flags.join(',')}\n`;
  if (s.autoMerge) out += '\t\tauto-merge\n';
  if (s.comment !== undefined) out += `\t\tcomment "${s.comment}"\n`;
  if (s.elements.length && !terse) {
    // a concatenation's elements: one per line
    const n = s.types ? 1 : PER_LINE[s.type];
    let body = '';
    s.elements.forEach((e, i) => { body += (i === 0 ? '' : i % n === 0 ? WRAP : ', ') + e; });
    out += `\t\telements = { ${body} }\n`;
  }
  return `${out}\t}\n`;
}
