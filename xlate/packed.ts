/**
 * Packed rules: the IR of the plain rule lines big rulesets are made of
 * (blocklists, kube-proxy style service lists, port rules), kept in columns.
 *
 *   -A CHAIN [[!] -s A[/N]] [[!] -d A[/N]] [[!] -i IF] [[!] -o IF] [[!] -p PROTO]
 *            [-m tcp|udp [[!] --sport P[:P]] [[!] --dport P[:P]]] [-j VERDICT | -g CHAIN]
 *
 * with single spaces, numeric ports and addresses, in this order. A
 * `RuleBlock` holds any number of such rules as typed arrays (34 bytes a
 * rule); a `PackedRule` is one of them as an IR `Rule` (xlate/ir.ts): its
 * `ip` and `matches` are built on first use (then kept), its `verdict` is
 * shared with every rule of the same verdict, and `src` comes from the
 * block. Code that only needs what the columns hold reads them directly
 * (`packedOf`): the parser, the validator, the compiler's exact-match runs
 * and the stored form never build the objects of a 100k-rule blocklist,
 * which on a machine with costly page faults was most of a restore.
 *
 * Where a Rule is copied field by field (`{ ...r }`), use `plainRule`
 * instead: a PackedRule's fields are getters, which a spread does not copy.
 * JSON.stringify gives the same text as for the plain rule (toJSON).
 *
 * `scanPacked` takes a line into a block exactly when the generic parser
 * (xlate/rule-parse) would build the same rule from it, without a warning;
 * anything else — another option, another order, a name to look up, a value
 * the generic parser would refuse or warn about — is left to the generic
 * parser, which gives the error or the warning. test/packed checks that on
 * every rule line of the fixtures and the conformance dumps, and on
 * generated ones. Pure.
 */
import type { Addr4Match, Chain, Counters, IfaceMatch, IpPart, Match, Rule, SourceRef, Verdict } from './ir';
import { type NameDb, protoNumber } from './names';
import { TARGET_MODULES } from './targets';

/** Bits of a packed rule's flags column (const enums: the compiler writes the numbers in). */
export const enum PF {
  SRC = 1 << 0, SRC_INV = 1 << 1, DST = 1 << 2, DST_INV = 1 << 3,
  IN = 1 << 4, IN_INV = 1 << 5, OUT = 1 << 6, OUT_INV = 1 << 7,
  PROTO = 1 << 8, PROTO_INV = 1 << 9,
  /** a `-m tcp` or `-m udp` match (UDP: the match is udp) */
  L4 = 1 << 10, UDP = 1 << 11,
  SPORT = 1 << 12, SPORT_INV = 1 << 13, DPORT = 1 << 14, DPORT_INV = 1 << 15,
}

/** RuleBlock.used: some row names a target (the target column is not all zero). */
const USED_TARGET = 1 << 16;

/** The verdict column: what a rule does. */
export const enum PV { NONE = 0, ACCEPT = 1, DROP = 2, RETURN = 3, JUMP = 4, GOTO = 5 }

const frozen = <T extends object>(x: T): T => Object.freeze(x);
/** The verdicts without a chain, one object each (frozen: rules share them). */
const SIMPLE_VERDICTS: readonly Verdict[] = [
  frozen({ kind: 'none' }), frozen({ kind: 'accept' }), frozen({ kind: 'drop' }), frozen({ kind: 'return' }),
];
/** The counters of a rule that has counted nothing yet (frozen: rules replace their counters, never change them in place). */
export const ZERO_COUNTERS: Counters = frozen({ packets: 0, bytes: 0 });

const COLUMNS = ['flags', 'src', 'dst', 'bits', 'ifaces', 'proto', 'sport', 'dport', 'verdict', 'target', 'line'] as const;
type ColumnName = (typeof COLUMNS)[number];
/** The columns of the stored form: all but the line (source positions belong to the input, not to the store). */
const STORED = COLUMNS.filter((c) => c !== 'line');
const COLUMN_BYTES: Record<ColumnName, number> = { flags: 2, src: 4, dst: 4, bits: 2, ifaces: 4, proto: 1, sport: 4, dport: 4, verdict: 1, target: 4, line: 4 };

/** Does some row of a block whose `used` bits these are have a value in column `c` (else it is all zero)? */
function columnUsed(c: ColumnName, used: number): boolean {
  switch (c) {
    case 'src': return (used & PF.SRC) !== 0;
    case 'dst': return (used & PF.DST) !== 0;
    case 'bits': return (used & (PF.SRC | PF.DST)) !== 0;
    case 'ifaces': return (used & (PF.IN | PF.OUT)) !== 0;
    case 'proto': return (used & PF.PROTO) !== 0;
    case 'sport': return (used & PF.SPORT) !== 0;
    case 'dport': return (used & PF.DPORT) !== 0;
    case 'target': return (used & USED_TARGET) !== 0;
    default: return true;
  }
}

/**
 * Rules in columns. Row i is rule i of the block: which parts it has
 * (`flags`, PF bits), its addresses (already masked) and their prefix
 * lengths (`bits`: source in the low byte, destination in the high one),
 * its devices (`ifaces`: string indexes + 1, input low, output high; 0 for
 * none), protocol, ports (`lo | hi << 16`), verdict (PV) and target (a
 * string index) and the line it came from. Rows are never changed once
 * written: PackedRules read them for as long as they live.
 */
export class RuleBlock {
  count = 0;
  /** the PF bits of every row or'ed together, and USED_TARGET when some row jumps or goes to a chain: which columns hold more than zeros */
  used = 0;
  flags: Uint16Array;
  src: Uint32Array;
  dst: Uint32Array;
  bits: Uint16Array;
  ifaces: Uint32Array;
  proto: Uint8Array;
  sport: Uint32Array;
  dport: Uint32Array;
  verdict: Uint8Array;
  target: Uint32Array;
  line: Uint32Array;
  /** chain and device names the rows refer to */
  readonly strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  /** the jump and goto verdicts, by target, made once */
  private readonly jumps: Verdict[] = [];
  private readonly gotos: Verdict[] = [];

  /** `file`: where the rows' lines are (their `src`); none for a block read back from the store */
  constructor(readonly file: string | undefined, capacity = 256) {
    this.flags = new Uint16Array(capacity);
    this.src = new Uint32Array(capacity);
    this.dst = new Uint32Array(capacity);
    this.bits = new Uint16Array(capacity);
    this.ifaces = new Uint32Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.sport = new Uint32Array(capacity);
    this.dport = new Uint32Array(capacity);
    this.verdict = new Uint8Array(capacity);
    this.target = new Uint32Array(capacity);
    this.line = new Uint32Array(capacity);
  }

  /** The index of a string in `strings`, added if new. */
  intern(s: string): number {
    let i = this.stringIndex.get(s);
    if (i === undefined) { i = this.strings.length; this.strings.push(s); this.stringIndex.set(s, i); }
    return i;
  }

  /** Room for one more row (the caller checks there is none: count === line.length). */
  grow(): void {
    const cap = this.line.length * 2;
    for (const c of COLUMNS) {
      const old = this[c];
      const grown = new (old.constructor as new (n: number) => typeof old)(cap);
      grown.set(old as never);
      (this as Record<ColumnName, typeof old>)[c] = grown;
    }
  }

  verdictOf(i: number): Verdict {
    const v = this.verdict[i]!;
    if (v < PV.JUMP) return SIMPLE_VERDICTS[v]!;
    const t = this.target[i]!;
    const cache = v === PV.JUMP ? this.jumps : this.gotos;
    return cache[t] ??= frozen({ kind: v === PV.JUMP ? 'jump' : 'goto', chain: this.strings[t]! });
  }

  /** The chain a jump or goto of row i names, else undefined. */
  targetOf(i: number): string | undefined {
    return this.verdict[i]! >= PV.JUMP ? this.strings[this.target[i]!] : undefined;
  }

  private iface(packed: number, invert: boolean): IfaceMatch {
    const name = this.strings[packed - 1]!;
    const wildcard = name.endsWith('+');
    return { name: wildcard ? name.slice(0, -1) : name, wildcard, invert };
  }

  /** Row i's ip part and matches, built as the generic parser builds them (key order included: the stored form is JSON). */
  build(i: number): { ip: IpPart; matches: Match[] } {
    const f = this.flags[i]!;
    const ip: IpPart = {};
    if (f & PF.IN) ip.in = this.iface(this.ifaces[i]! & 0xffff, (f & PF.IN_INV) !== 0);
    if (f & PF.OUT) ip.out = this.iface(this.ifaces[i]! >>> 16, (f & PF.OUT_INV) !== 0);
    if (f & PF.PROTO) ip.proto = { num: this.proto[i]!, invert: (f & PF.PROTO_INV) !== 0 };
    if (f & PF.SRC) ip.src = addr(this.src[i]!, this.bits[i]! & 0xff, (f & PF.SRC_INV) !== 0);
    if (f & PF.DST) ip.dst = addr(this.dst[i]!, this.bits[i]! >>> 8, (f & PF.DST_INV) !== 0);
    const matches: Match[] = [];
    if (f & PF.L4) {
      const t = { kind: f & PF.UDP ? 'udp' : 'tcp' } as Extract<Match, { kind: 'tcp' }>;
      if (f & PF.SPORT) t.sport = { range: [this.sport[i]! & 0xffff, this.sport[i]! >>> 16], invert: (f & PF.SPORT_INV) !== 0 };
      if (f & PF.DPORT) t.dport = { range: [this.dport[i]! & 0xffff, this.dport[i]! >>> 16], invert: (f & PF.DPORT_INV) !== 0 };
      matches.push(t);
    }
    return { ip, matches };
  }

  /** Copy row i of `from` into a new row of this block (its names interned here); the new row's index. */
  copyRow(from: RuleBlock, i: number): number {
    if (this.count === this.line.length) this.grow();
    const j = this.count++;
    const name = (packed: number): number => (packed === 0 ? 0 : this.intern(from.strings[packed - 1]!) + 1);
    const ifs = from.ifaces[i]!;
    this.flags[j] = from.flags[i]!; this.src[j] = from.src[i]!; this.dst[j] = from.dst[i]!; this.bits[j] = from.bits[i]!;
    this.ifaces[j] = (name(ifs & 0xffff) | (name(ifs >>> 16) << 16)) >>> 0;
    this.proto[j] = from.proto[i]!; this.sport[j] = from.sport[i]!; this.dport[j] = from.dport[i]!; this.verdict[j] = from.verdict[i]!;
    this.target[j] = from.verdict[i]! >= PV.JUMP ? this.intern(from.strings[from.target[i]!]!) : 0;
    this.used |= this.flags[j]! | (from.verdict[i]! >= PV.JUMP ? USED_TARGET : 0);
    this.line[j] = from.line[i]!;
    return j;
  }

  /** Bytes of the stored columns of `count` rows (`zero`: columns left out). */
  static bytesFor(meta: PackedBlockMeta): number {
    let row = 0;
    for (const c of STORED) if (!meta.zero?.includes(c)) row += COLUMN_BYTES[c];
    return meta.count * row;
  }

  /**
   * The stored columns' rows [0, count), views of the columns to be written
   * one after the other, leaving out the columns no row uses (zeros: a
   * blocklist stores 9 bytes a rule); back with `RuleBlock.decode`.
   */
  encode(): { meta: PackedBlockMeta; parts: Buffer[] } {
    const parts: Buffer[] = [];
    const zero: ColumnName[] = [];
    for (const c of STORED) {
      if (!columnUsed(c, this.used)) { zero.push(c); continue; }
      const a = this[c];
      parts.push(Buffer.from(a.buffer, a.byteOffset, this.count * a.BYTES_PER_ELEMENT));
    }
    return { meta: { count: this.count, strings: this.strings, ...(zero.length ? { zero } : {}) }, parts };
  }

  static decode(meta: PackedBlockMeta, bytes: Buffer): RuleBlock {
    const b = new RuleBlock(undefined, Math.max(1, meta.count));
    let at = 0;
    for (const c of STORED) {
      if (meta.zero?.includes(c)) continue;
      const col = b[c];
      const len = meta.count * col.BYTES_PER_ELEMENT;
      if (at + len > bytes.length) throw new Error('stored rule block is cut short');
      // copied: the columns must be aligned for their element size, a slice of the stored bytes need not be
      new Uint8Array(col.buffer, col.byteOffset, len).set(bytes.subarray(at, at + len));
      at += len;
    }
    if (at !== bytes.length) throw new Error('stored rule block has extra bytes');
    b.count = meta.count;
    for (let i = 0; i < b.count; i++) b.used |= b.flags[i]! | (b.verdict[i]! >= PV.JUMP ? USED_TARGET : 0);
    for (const s of meta.strings) b.intern(s);
    return b;
  }
}

/** What the stored form keeps of a block besides its columns. */
export interface PackedBlockMeta {
  count: number; strings: string[];
  /** columns left out of the stored form: all zero */
  zero?: string[];
}

function addr(a: number, bits: number, invert: boolean): Addr4Match {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { addr: a, mask, invert };
}

/** One row of a RuleBlock as an IR rule (see the file comment). */
export class PackedRule implements Rule {
  counters: Counters = ZERO_COUNTERS;
  private built: { ip: IpPart; matches: Match[] } | undefined = undefined;
  constructor(readonly block: RuleBlock, readonly index: number) {}
  get ip(): IpPart { return (this.built ??= this.block.build(this.index)).ip; }
  get matches(): Match[] { return (this.built ??= this.block.build(this.index)).matches; }
  get verdict(): Verdict { return this.block.verdictOf(this.index); }
  get src(): SourceRef | undefined {
    const file = this.block.file;
    return file === undefined ? undefined : { file, line: this.block.line[this.index]! };
  }
  /** (rare) another source: an own property of this rule from then on */
  set src(v: SourceRef | undefined) { Object.defineProperty(this, 'src', { value: v, writable: true, enumerable: true, configurable: true }); }
  /** ip and matches as kept, or built for one use (readOnce) */
  peek(): { ip: IpPart; matches: Match[] } { return this.built ?? this.block.build(this.index); }
  toJSON(): Rule { return plainRule(this); }
}

/**
 * The rule to read once, as printers do: a packed rule's fields built for
 * this use and not kept (iptables-save of 100k rules would otherwise keep
 * every rule's objects, which the garbage collector then copies), any other
 * rule as it is.
 */
export function readOnce(r: Rule): Rule {
  if (!(r instanceof PackedRule)) return r;
  const { ip, matches } = r.peek();
  return { ip, matches, verdict: r.verdict, counters: r.counters, src: r.src };
}

/** The rule's block and row when it is packed. */
export const packedOf = (r: Rule): PackedRule | undefined => (r instanceof PackedRule ? r : undefined);

/**
 * Packed chains: a chain whose rules are rows [from, to) of one block, in
 * order (what a restore makes of a blocklist's chain), holds no rule object
 * until something reads its `rules`: that property is then built, once, as
 * the PackedRules of the rows (with their counters when `counters` is set:
 * 16 bytes a slot, little-endian packets then bytes, the chain's first rule
 * at slot `base`), and the chain is a plain chain from then on. A spread or
 * JSON of the chain reads `rules` too. Code on the hot path asks
 * packedRows() first and reads the columns.
 */
export interface PackedRows {
  block: RuleBlock; from: number; to: number;
  counters?: { values: Buffer; base: number };
}
const packedChains = new WeakMap<Chain, PackedRows>();

/** The rows a packed chain holds, or undefined for a chain whose rules are objects. */
export const packedRows = (c: Chain): PackedRows | undefined => packedChains.get(c);

/** How many rules the chain has (a packed chain's without building them). */
export function chainLength(c: Chain): number {
  const p = packedChains.get(c);
  return p ? p.to - p.from : c.rules.length;
}

/** Make `c` (whose rules are none yet) a packed chain of `rows`. */
export function packChain(c: Chain, rows: PackedRows): void {
  packedChains.set(c, rows);
  Object.defineProperty(c, 'rules', {
    configurable: true, enumerable: true,
    get: () => unpack(c),
    set: (v: Rule[]) => { unpack(c); c.rules = v; },
  });
}

/** Build a packed chain's rules; it is a plain chain from then on. */
function unpack(c: Chain): Rule[] {
  const p = packedChains.get(c)!;
  const rules: Rule[] = new Array(p.to - p.from);
  for (let i = p.from; i < p.to; i++) {
    const r = new PackedRule(p.block, i);
    if (p.counters) r.counters = countersAt(p.counters.values, p.counters.base + i - p.from);
    rules[i - p.from] = r;
  }
  packedChains.delete(c);
  Object.defineProperty(c, 'rules', { value: rules, writable: true, enumerable: true, configurable: true });
  return rules;
}

/** A u64 of a counter buffer (little-endian), as a number (exact up to 2^53, as Number(BigInt) beyond). */
const u64 = (v: Buffer, at: number): number => v.readUInt32LE(at) + v.readUInt32LE(at + 4) * 4294967296;
/** The counters in slot `slot` of a counter map's value (16 bytes a slot); zero ones shared (ZERO_COUNTERS). */
export function countersAt(v: Buffer, slot: number): Counters {
  const packets = u64(v, slot * 16), bytes = u64(v, slot * 16 + 8);
  return packets === 0 && bytes === 0 ? ZERO_COUNTERS : { packets, bytes };
}

/** The chains that rows [from, to) of a packed chain jump or go to, each once, in first-use order (into `out`). */
export function rowTargets(p: PackedRows, out: Set<string>): Set<string> {
  const v = p.block.verdict;
  for (let i = p.from; i < p.to; i++) if (v[i]! >= PV.JUMP) out.add(p.block.targetOf(i)!);
  return out;
}

/** The rule with other counters (a new object; a packed rule stays packed). */
export function withCounters(r: Rule, counters: Counters): Rule {
  if (!(r instanceof PackedRule)) return { ...r, counters };
  const n = new PackedRule(r.block, r.index);
  n.counters = counters;
  return n;
}

/** A plain-object copy of a rule's fields (what `{ ...r }` gives for a plain rule), to spread or change. */
export function plainRule(r: Rule): Rule {
  const out: Rule = { ip: r.ip, matches: r.matches, verdict: r.verdict, counters: r.counters };
  const src = r.src;
  if (src !== undefined) out.src = src;
  return out;
}

const SP = 32, TAB = 9, QUOTE = 34, BSLASH = 92, BANG = 33, DASH = 45, D0 = 48, D9 = 57, DOT = 46, SLASH = 47, COLON = 58;

/**
 * Scan state (module-level, one scan at a time: the scanner is pure and
 * synchronous): the end of the token `name` read, and of the line.
 */
let pos = 0, end = 0;

/** A name token at `pos` ([^ \t"\\!-][^ \t"\\]*, up to a blank or the end of the line); its end, or -1. */
function nameEnd(text: string, maxLen: number): number {
  let p = pos;
  if (p >= end) return -1;
  const c0 = text.charCodeAt(p);
  if (c0 === SP || c0 === TAB || c0 === QUOTE || c0 === BSLASH || c0 === BANG || c0 === DASH) return -1;
  for (p++; p < end; p++) {
    const c = text.charCodeAt(p);
    if (c === SP) break;
    if (c === TAB || c === QUOTE || c === BSLASH) return -1;
  }
  return p - pos > maxLen ? -1 : p;
}

/** A number of 1 to `digits` digits at `pos` (moved past it), or -1. */
function number(text: string, digits: number): number {
  let n = 0, k = 0;
  for (; pos < end && k <= digits; pos++, k++) {
    const c = text.charCodeAt(pos);
    if (c < D0 || c > D9) break;
    n = n * 10 + (c - D0);
  }
  return k === 0 || k > digits ? -1 : n;
}

/** A dotted quad with an optional /N at `pos`, masked; writes the prefix length to `scanBits`. -1 if not. */
let scanBits = 32;
function address(text: string): number {
  let a = 0;
  for (let k = 0; k < 4; k++) {
    if (k > 0) { if (pos >= end || text.charCodeAt(pos) !== DOT) return -1; pos++; }
    // one to three digits, at most 255
    let o = 0, d = 0;
    for (; pos < end && d < 4; pos++, d++) {
      const c = text.charCodeAt(pos);
      if (c < D0 || c > D9) break;
      o = o * 10 + (c - D0);
    }
    if (d === 0 || d > 3 || o > 255) return -1;
    a = a * 256 + o;
  }
  scanBits = 32;
  if (pos < end && text.charCodeAt(pos) === SLASH) {
    pos++;
    const b = number(text, 2);
    if (b < 0 || b > 32) return -1;
    scanBits = b;
  }
  return scanBits === 32 ? a : scanBits === 0 ? 0 : (a & ((0xffffffff << (32 - scanBits)) >>> 0)) >>> 0;
}

/** A port or port range at `pos` as lo | hi << 16, or -1. */
function portRange(text: string): number {
  const lo = number(text, 5);
  if (lo < 0 || lo > 65535) return -1;
  let hi = lo;
  if (pos < end && text.charCodeAt(pos) === COLON) {
    pos++;
    hi = number(text, 5);
    if (hi < 0 || hi > 65535 || lo > hi) return -1;
  }
  return (lo | (hi << 16)) >>> 0;
}

/**
 * At `pos`: " [! ]--sport " (or --dport) and a port range; moves past it.
 * The range (lo | hi << 16), -1 when the option is absent (nothing read),
 * -2 when it is there but its range is not (the line is refused); the
 * inversion goes to `portBang`.
 */
let portBang = false;
function portOption(text: string, opt: string): number {
  const at = pos;
  portBang = text.startsWith(' ! ', pos);
  if (portBang) pos += 2;
  if (!text.startsWith(opt, pos) || pos + opt.length > end) { pos = at; return -1; }
  pos += opt.length;
  const r = portRange(text);
  return r < 0 ? -2 : r;
}

/** Is text[from, to) exactly `word`? */
const isWord = (text: string, from: number, to: number, word: string): boolean => to - from === word.length && text.startsWith(word, from);

/** The chain named by the last line scanned, reused while lines name the same one. */
let lastChain = '';
/** The word after the last -j or -g read (a verdict or a chain; '' for none yet). */
let lastWord = '';
/** The last jump target interned, and its index in that block. */
let lastTarget = '', lastTargetBlock: RuleBlock | undefined, lastTargetId = 0;

/**
 * Scan the rule line text[from, to) (no line break; a trailing CR is
 * ignored) into a new row of `block`: the chain it appends to, or undefined
 * when the line is not in the packed form (the block is then unchanged).
 */
export function scanPacked(text: string, from: number, to: number, block: RuleBlock, db: NameDb, line: number): string | undefined {
  if (to > from && text.charCodeAt(to - 1) === 13) to--;
  end = to;
  if (to - from < 4 || text.charCodeAt(from) !== DASH || text.charCodeAt(from + 1) !== 65 /* A */ || text.charCodeAt(from + 2) !== SP) return undefined;
  pos = from + 3;
  // the chain of the line before, compared whole (one call, where a first run of the scanner, not yet
  // optimized, would spend more on a character loop than on the rest of the line), else read
  let chain = lastChain, chainEnd = pos + lastChain.length;
  if (chain === '' || chainEnd > end || !text.startsWith(chain, pos) || (chainEnd < end && text.charCodeAt(chainEnd) !== SP)) {
    chainEnd = nameEnd(text, Infinity);
    if (chainEnd < 0) return undefined;
    chain = lastChain = text.slice(pos, chainEnd);
  }
  pos = chainEnd;
  let flags = 0, src = 0, dst = 0, bits = 0, ifaces = 0, proto = 0, sport = 0, dport = 0, verdict: number = PV.NONE, target = 0;
  // the options in their one order: -s -d -i -o -p, then -m tcp|udp (--sport --dport), then -j or -g
  let stage = 0;
  while (pos < end) {
    let bang = false;
    if (text.charCodeAt(pos) === SP && text.charCodeAt(pos + 1) === BANG) {
      if (text.charCodeAt(pos + 2) !== SP) return undefined;
      bang = true;
      pos += 2;
    }
    if (pos + 4 > end || text.charCodeAt(pos) !== SP || text.charCodeAt(pos + 1) !== DASH || text.charCodeAt(pos + 3) !== SP) return undefined;
    const x = text.charCodeAt(pos + 2);
    pos += 4;
    if (x === 115 /* s */ && stage < 1) {
      stage = 1;
      src = address(text);
      if (src < 0) return undefined;
      flags |= PF.SRC | (bang ? PF.SRC_INV : 0);
      bits |= scanBits;
    } else if (x === 100 /* d */ && stage < 2) {
      stage = 2;
      dst = address(text);
      if (dst < 0) return undefined;
      flags |= PF.DST | (bang ? PF.DST_INV : 0);
      bits |= scanBits << 8;
    } else if ((x === 105 /* i */ && stage < 3) || (x === 111 /* o */ && stage < 4)) {
      stage = x === 105 ? 3 : 4;
      const e = nameEnd(text, 15);
      if (e < 0) return undefined;
      const id = block.intern(text.slice(pos, e)) + 1;
      pos = e;
      if (x === 105) { flags |= PF.IN | (bang ? PF.IN_INV : 0); ifaces |= id; } else { flags |= PF.OUT | (bang ? PF.OUT_INV : 0); ifaces = (ifaces | (id << 16)) >>> 0; }
    } else if (x === 112 /* p */ && stage < 5) {
      stage = 5;
      const e = nameEnd(text, Infinity);
      if (e < 0) return undefined;
      const num = isWord(text, pos, e, 'tcp') ? 6 : isWord(text, pos, e, 'udp') ? 17 : protoNumber(text.slice(pos, e), db);
      if (num === undefined || num === 0) return undefined;
      pos = e;
      proto = num;
      flags |= PF.PROTO | (bang ? PF.PROTO_INV : 0);
    } else if (x === 109 /* m */ && stage < 6 && !bang) {
      stage = 6;
      const udp = text.startsWith('udp', pos);
      if (!udp && !text.startsWith('tcp', pos)) return undefined;
      pos += 3;
      if (pos < end && text.charCodeAt(pos) !== SP) return undefined;
      // the match needs its protocol, given plainly
      if (!(flags & PF.PROTO) || (flags & PF.PROTO_INV) || proto !== (udp ? 17 : 6)) return undefined;
      flags |= PF.L4 | (udp ? PF.UDP : 0);
      const sp = portOption(text, ' --sport ');
      if (sp === -2) return undefined;
      if (sp >= 0) { sport = sp; flags |= PF.SPORT | (portBang ? PF.SPORT_INV : 0); }
      const dp = portOption(text, ' --dport ');
      if (dp === -2) return undefined;
      if (dp >= 0) { dport = dp; flags |= PF.DPORT | (portBang ? PF.DPORT_INV : 0); }
    } else if ((x === 106 /* j */ || x === 103 /* g */) && stage < 7 && !bang) {
      stage = 7;
      // the rest of the line: the word of the line before (compared whole), else read
      let word = lastWord;
      if (word === '' || end - pos !== word.length || !text.startsWith(word, pos)) {
        if (nameEnd(text, Infinity) !== end) return undefined;
        word = lastWord = text.slice(pos, end);
      }
      const builtin = word === 'DROP' ? PV.DROP : word === 'ACCEPT' ? PV.ACCEPT : word === 'RETURN' ? PV.RETURN : PV.NONE;
      if (builtin !== PV.NONE) {
        if (x === 103) return undefined; // -g needs a chain
        verdict = builtin;
      } else {
        if (lastTargetBlock !== block || word !== lastTarget) {
          if (TARGET_MODULES.has(word)) return undefined;
          lastTarget = word; lastTargetBlock = block; lastTargetId = block.intern(word);
        }
        verdict = x === 103 ? PV.GOTO : PV.JUMP;
        target = lastTargetId;
      }
      pos = end;
    } else return undefined;
    // every part ends at a blank or at the end of the line
    if (pos < end && text.charCodeAt(pos) !== SP) return undefined;
  }
  if (block.count === block.line.length) block.grow();
  const i = block.count++;
  block.flags[i] = flags; block.src[i] = src; block.dst[i] = dst; block.bits[i] = bits; block.ifaces[i] = ifaces;
  block.proto[i] = proto; block.sport[i] = sport; block.dport[i] = dport; block.verdict[i] = verdict; block.target[i] = target; block.line[i] = line;
  block.used |= flags | (verdict >= PV.JUMP ? USED_TARGET : 0);
  return chain;
}
