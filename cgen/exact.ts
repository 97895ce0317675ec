/**
 * Exact-match runs: consecutive rules that test nothing but exact values of
 * the same fields (source /32, destination /32, protocol, one source port,
 * one destination port) and ACCEPT, DROP or jump to a chain become one
 * lookup keyed by those fields: a binary search by compares for a few keys,
 * a compact hash table in one array-map value (cgen/compact.ts) for more keys
 * of at most 64 bits, a kernel hash map for wider keys. The value names the first rule with
 * that key (first match wins, as in the chain) — its counter slot and its
 * verdict, or for a jump the index of its chain among the run's targets; a
 * jump is dispatched by a binary tree of compares to a call of that chain.
 * A run with jumps holds every key once: when the chain returns, no other
 * rule of the run can match, and the packet goes on after the run. A packet
 * whose key is absent matches no rule of the run. iptables' tcp/udp semantics are kept:
 * non-first fragments match none; a header too short to read (or a TCP
 * fragment at offset 1) is dropped when some rule's address/protocol part
 * matches, found with a second lookup on those fields only. Pure.
 */
import { chainLength, PackedRule, packedRows, PF, PV, type RuleBlock } from '../xlate/packed';
import { type Asm, Helper, NF_ACCEPT, NF_DROP, R0, R1, R2, R3, R9, R10 } from './asm';
import { buildCompact, type CompactLayout, type CompactTable, emitCompactSearch, emitEntryValue, valueWord } from './compact';
import type { MapSpecOut } from './prefilter';
import { S } from './summary';
import { type Addr4Match, type Chain, isAddr6, type Rule } from '../xlate/ir';

export const MIN_EXACT_RUN = 16;
/**
 * Runs of at most this many distinct keys (of at most 64 bits) become a
 * binary search over the keys, a few compares with no map (about 10 ns over
 * the floor for 100 keys on the development machine); longer runs a compact
 * table (about as fast, whatever the size) or, for wider keys, a kernel hash
 * lookup (20 to 30 ns); those take appended rules.
 */
export const TREE_MAX = 128;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_ARRAY = 2;
/** The largest key (every field): the lookup buffer on the stack is this big. */
const KEY_MAX = 16;

/** Which fields a keyable rule tests; `sig` says the same as one number (rules of one shape share it). */
interface Shape {
  src: boolean; dst: boolean; proto: boolean; sport: boolean; dport: boolean; l4: 'tcp' | 'udp' | ''; sig: number; key: KeyLayout;
  /** bits of its search value with ports (keyBits), and without */
  bits: number; partBits: number;
  /** valueFields with ports, and without: made with the shape, as rules ask for them one by one */
  fields: readonly ValueField[]; partFields: readonly ValueField[];
}

/**
 * Where a shape's fields lie in its key (byte offsets, -1 when absent): the
 * addresses, then the ports, then the protocol, each at its natural alignment
 * (the verifier wants aligned stack stores); the size rounded up to 4 bytes.
 * A smaller key hashes faster and makes each map element smaller (a source
 * blocklist's key is 4 bytes).
 */
interface KeyLayout { size: number; src: number; dst: number; sport: number; dport: number; proto: number }

function keyLayout(s: { src: boolean; dst: boolean; proto: boolean; sport: boolean; dport: boolean }): KeyLayout {
  let at = 0;
  const place = (used: boolean, len: number): number => { if (!used) return -1; const o = at; at += len; return o; };
  const src = place(s.src, 4), dst = place(s.dst, 4), sport = place(s.sport, 2), dport = place(s.dport, 2), proto = place(s.proto, 1);
  return { size: (at + 3) & ~3, src, dst, sport, dport, proto };
}


/** One object per distinct shape (there are at most 2^5 * 3), so a run's rules share theirs. */
const SHAPES = new Map<number, Shape>();

function computeShape(r: Rule): Shape | undefined {
  if (r instanceof PackedRule) return packedShape(r.block, r.index);
  const ip = r.ip;
  if (r.verdict.kind !== 'accept' && r.verdict.kind !== 'drop' && r.verdict.kind !== 'jump') return undefined;
  if (ip.in || ip.out || ip.frag) return undefined;
  if (!exactAddr(ip.src) || !exactAddr(ip.dst) || ip.proto?.invert || ip.proto?.nft) return undefined;
  let sport = false, dport = false, l4: Shape['l4'] = '';
  for (const m of r.matches) {
    if (m.kind === 'comment') continue;
    if ((m.kind !== 'tcp' && m.kind !== 'udp') || l4) return undefined;
    if ((m.kind === 'tcp' && m.flags) || m.short) return undefined;
    if (m.sport) { if (m.sport.invert || m.sport.range[0] !== m.sport.range[1]) return undefined; sport = true; }
    if (m.dport) { if (m.dport.invert || m.dport.range[0] !== m.dport.range[1]) return undefined; dport = true; }
    l4 = m.kind;
  }
  return shapeOf(!!ip.src, !!ip.dst, !!ip.proto, sport, dport, l4);
}

/** computeShape of a packed rule, from its row (PF bits) alone. */
function packedShape(b: RuleBlock, i: number): Shape | undefined {
  const v = b.verdict[i]!;
  if (v !== PV.ACCEPT && v !== PV.DROP && v !== PV.JUMP) return undefined;
  const f = b.flags[i]!;
  if (f & (PF.IN | PF.OUT | PF.SRC_INV | PF.DST_INV | PF.PROTO_INV | PF.SPORT_INV | PF.DPORT_INV)) return undefined;
  if ((f & PF.SRC) && (b.bits[i]! & 0xff) !== 32) return undefined;
  if ((f & PF.DST) && (b.bits[i]! >>> 8) !== 32) return undefined;
  const sport = (f & PF.SPORT) !== 0, dport = (f & PF.DPORT) !== 0;
  if (sport && (b.sport[i]! & 0xffff) !== b.sport[i]! >>> 16) return undefined;
  if (dport && (b.dport[i]! & 0xffff) !== b.dport[i]! >>> 16) return undefined;
  return shapeOf((f & PF.SRC) !== 0, (f & PF.DST) !== 0, (f & PF.PROTO) !== 0, sport, dport, f & PF.L4 ? (f & PF.UDP ? 'udp' : 'tcp') : '');
}

function shapeOf(src: boolean, dst: boolean, proto: boolean, sport: boolean, dport: boolean, l4: Shape['l4']): Shape | undefined {
  if (!src && !dst && !proto) return undefined;
  const sig = +src | (+dst << 1) | (+proto << 2) | (+sport << 3) | (+dport << 4) | ((l4 === 'tcp' ? 1 : l4 === 'udp' ? 2 : 0) << 5);
  let shape = SHAPES.get(sig);
  if (!shape) {
    const made: Shape = { src, dst, proto, sport, dport, l4, sig, key: keyLayout({ src, dst, proto, sport, dport }), bits: (src ? 32 : 0) + (dst ? 32 : 0) + (sport ? 16 : 0) + (dport ? 16 : 0) + (proto ? 8 : 0), partBits: (src ? 32 : 0) + (dst ? 32 : 0) + (proto ? 8 : 0), fields: [], partFields: [] };
    made.fields = fieldsOf(made, true);
    made.partFields = fieldsOf(made, false);
    shape = made;
    SHAPES.set(sig, shape);
    SHAPE_BY_SIG[sig] = shape;
  }
  return shape;
}

/** A keyable rule's fields (computeShape said which it has), from a packed rule's row without building its objects. */
const srcOf = (r: Rule): number => (r instanceof PackedRule ? r.block.src[r.index]! : (r.ip.src as Addr4Match).addr);
const dstOf = (r: Rule): number => (r instanceof PackedRule ? r.block.dst[r.index]! : (r.ip.dst as Addr4Match).addr);
const protoOf = (r: Rule): number | undefined => (r instanceof PackedRule ? ((r.block.flags[r.index]! & PF.PROTO) ? r.block.proto[r.index]! : undefined) : r.ip.proto?.num);

/** absent, or one IPv4 address exactly */
const exactAddr = (a: Rule['ip']['src']): boolean => !a || (!isAddr6(a) && !a.invert && a.mask === 0xffffffff);

export interface ExactRun {
  from: number; to: number; shape: Shape; map: string; ipMap?: string;
  /**
   * how the keys are looked up: `tree` a binary search by compares (few
   * keys, at most 64 key bits, no maps); `compact` a compact hash table
   * (more keys of at most 64 bits, cgen/compact.ts); `hash` a kernel hash map
   */
  kind: 'tree' | 'compact' | 'hash';
  /** the compact tables of the full keys and of the address parts (tcp/udp runs) */
  compact?: { full: CompactTable; part?: CompactTable };
  /** the chains the run's rules jump to, in first-use order (a hit's value holds 2 + the index) */
  targets: string[];
}
/** A hit's verdict value: NF_DROP, NF_ACCEPT, or JUMP_BASE + the index of the run's target. */
const JUMP_BASE = 2;

/**
 * What identifies a rule's key within a run of one shape: the fields of the
 * shape joined as a string, or for the commonest shapes (one address) the
 * number itself. The protocol is left out of tcp/udp runs (one protocol each).
 */
function keyId(r: Rule, s: Shape, withPorts: boolean): string | number {
  const src = s.src ? srcOf(r) : 0, dst = s.dst ? dstOf(r) : 0;
  const proto = s.proto && !s.l4 ? protoOf(r)! : 0;
  if (!withPorts || (!s.sport && !s.dport)) {
    if (!s.proto || s.l4) {
      if (!s.dst) return src;
      if (!s.src) return dst;
    }
    return `${src},${dst},${proto}`;
  }
  const [sport, dport] = ports(r, s);
  return `${src},${dst},${proto},${sport},${dport}`;
}

function ports(r: Rule, s: Shape): [number, number] {
  if (r instanceof PackedRule) return [s.sport ? r.block.sport[r.index]! & 0xffff : 0, s.dport ? r.block.dport[r.index]! & 0xffff : 0];
  for (const m of r.matches) {
    if (m.kind !== 'tcp' && m.kind !== 'udp') continue;
    return [s.sport ? m.sport!.range[0] : 0, s.dport ? m.dport!.range[0] : 0];
  }
  return [0, 0];
}

/**
 * Maximal runs (at least MIN_EXACT_RUN rules) of keyable rules of one shape
 * within rules [lo, hi). `treeMax`: the most keys searched by compares;
 * `compact`: whether longer runs of narrow keys take compact tables (else
 * kernel hash maps).
 */
export function findExactRuns(chain: Chain, chainIdx: number, lo: number, hi: number, treeMax = TREE_MAX, compact = true): ExactRun[] {
  const runs: ExactRun[] = [];
  const rk = ruleKeys(chain, lo, hi);
  let i = lo;
  while (i < hi) {
    const sig = rk.sig[i - lo]!;
    if (sig === NOT_KEYABLE) { i++; continue; }
    const s = SHAPE_BY_SIG[sig]!;
    const proto = rk.proto[i - lo]!;
    const narrow = s.bits <= 64;
    // the rules that could make the run (one shape, and for tcp/udp one protocol); when their keys are all
    // distinct (a sort, in native code, tells) the run is all of them, and the first rule of each key is itself
    let end = i + 1;
    while (end < hi && rk.sig[end - lo] === sig && (!s.l4 || rk.proto[end - lo] === proto)) end++;
    let j: number, first: ArrayLike<number>, jumps = false;
    if (narrow && s.bits <= 53 && end - i >= MIN_EXACT_RUN && distinct(rk, i - lo, end - lo, s.bits)) {
      j = end;
      const all = new Int32Array(end - i);
      for (let k = 0; k < all.length; k++) all[k] = i + k;
      first = all;
      for (let k = i; k < end && !jumps; k++) jumps = rk.verdict[k - lo] === PV.JUMP;
    } else {
      // the first rule (its index) of each key so far: a run with jumps ends before a key comes again (see above)
      const keys = narrow ? new FirstKeys(rk.hi, rk.lo, lo) : new FirstIds();
      j = i;
      while (j < end) {
        const jump = rk.verdict[j - lo] === PV.JUMP;
        if (keys.seen(j, narrow ? undefined : keyId(chain.rules[j]!, s, true))) { if (jumps || jump) break; } else keys.add(j);
        jumps ||= jump;
        j++;
      }
      first = keys.order;
    }
    if (j - i >= MIN_EXACT_RUN) {
      const targets = new Set<string>();
      if (jumps) { const target = targetsOf(chain); for (let k = i; k < j; k++) { if (rk.verdict[k - lo] === PV.JUMP) targets.add(target(k)); } }
      const run: ExactRun = { from: i, to: j, shape: s, map: `ex_${chainIdx}_${i}`, ipMap: s.l4 ? `exip_${chainIdx}_${i}` : undefined, targets: [...targets], kind: 'hash' };
      runKeys.set(run, { first, rk, lo });
      if (narrow) {
        if (first.length <= treeMax) run.kind = 'tree';
        else if (compact) {
          const tables = compactTables(chain, run);
          if (tables) { run.kind = 'compact'; run.compact = tables; }
        }
      }
      runs.push(run);
    }
    i = j;
  }
  return runs;
}

/** Each rule's shape (its Shape.sig), protocol, verdict, and search values, for rules [lo, hi) of a chain. */
interface RuleKeys {
  /** Shape.sig, or NOT_KEYABLE */
  sig: ArrayLike<number>;
  /** the protocol, compared between rules of one shape (none: NO_PROTO, or 0 in a packed block's column) */
  proto: ArrayLike<number>;
  /** PV.ACCEPT, PV.DROP or PV.JUMP for a keyable rule (what computeShape allows) */
  verdict: ArrayLike<number>;
  /** the search value (valueFields with ports) as high and low 32 bits; and the address part's (without ports); zero for keys over 64 bits */
  hi: Uint32Array; lo: Uint32Array; partHi: Uint32Array; partLo: Uint32Array;
}
const NOT_KEYABLE = 255, NO_PROTO = 256;
/** The shapes by sig (filled as shapes are made). */
const SHAPE_BY_SIG: (Shape | undefined)[] = [];

/**
 * RuleKeys of rules [lo, hi) in one pass: a packed rule's from its block's
 * columns (no object is built), another's from its IR. When the rules are
 * consecutive rows of one block (what a restore makes of a blocklist or a
 * service list) the shapes, protocols and verdicts are views of the block's
 * columns and the values one loop over them.
 */
function ruleKeys(chain: Chain, lo: number, hi: number): RuleKeys {
  const n = hi - lo;
  const rows = packedRows(chain);
  if (rows) {
    // a packed chain: its rows' columns, no rule object
    const b = rows.block, from = rows.from + lo;
    const rk = newKeys(n, b.proto.subarray(from, from + n), b.verdict.subarray(from, from + n), packedSigs(b).subarray(from, from + n));
    rowKeys(b, from, n, rk, 0);
    return rk;
  }
  const rules = chain.rules;
  // the packed rows from rule k on that are consecutive rows of its block: how many
  const segment = (k: number): number => {
    const r0 = rules[lo + k] as PackedRule, b = r0.block, from = r0.index;
    let m = k + 1;
    for (; m < n; m++) { const r = rules[lo + m]; if (!(r instanceof PackedRule) || r.block !== b || r.index !== from + m - k) break; }
    return m - k;
  };
  if (n > 0 && rules[lo] instanceof PackedRule && segment(0) === n) {
    const r0 = rules[lo] as PackedRule;
    const rk = newKeys(n, r0.block.proto.subarray(r0.index, r0.index + n), r0.block.verdict.subarray(r0.index, r0.index + n), packedSigs(r0.block).subarray(r0.index, r0.index + n));
    rowKeys(r0.block, r0.index, n, rk, 0);
    return rk;
  }
  const proto = new Uint16Array(n), verdict = new Uint8Array(n), sig = new Uint8Array(n);
  const rk = newKeys(n, proto, verdict, sig);
  for (let k = 0; k < n;) {
    const r = rules[lo + k]!;
    if (r instanceof PackedRule) {
      const m = segment(k), b = r.block, sigs = packedSigs(b);
      for (let j = 0; j < m; j++) {
        const i = r.index + j;
        sig[k + j] = sigs[i]!; verdict[k + j] = b.verdict[i]!; proto[k + j] = b.proto[i] || NO_PROTO;
      }
      rowKeys(b, r.index, m, rk, k);
      k += m;
      continue;
    }
    const s = computeShape(r);
    if (!s) { sig[k++] = NOT_KEYABLE; continue; }
    sig[k] = s.sig;
    proto[k] = protoOf(r) ?? NO_PROTO;
    const v = r.verdict.kind;
    verdict[k] = v === 'jump' ? PV.JUMP : v === 'accept' ? PV.ACCEPT : PV.DROP;
    if (s.bits <= 64) splitInto(r, valueFields(s, true), rk.hi, rk.lo, k);
    if (s.partBits <= 64) splitInto(r, valueFields(s, false), rk.partHi, rk.partLo, k);
    k++;
  }
  return rk;
}

const newKeys = (n: number, proto: ArrayLike<number>, verdict: ArrayLike<number>, sig: ArrayLike<number>): RuleKeys =>
  ({ sig, proto, verdict, hi: new Uint32Array(n), lo: new Uint32Array(n), partHi: new Uint32Array(n), partLo: new Uint32Array(n) });

/** The search values of rows [from, from + n) of a block into rk's values at `at`: one loop over its columns. */
function rowKeys(b: RuleBlock, from: number, n: number, rk: RuleKeys, at: number): void {
  const sigs = packedSigs(b);
  const { hi, lo, partHi, partLo } = rk;
  const src = b.src, dst = b.dst, sport = b.sport, dport = b.dport, proto = b.proto;
  for (let k = 0; k < n; k++) {
    const i = from + k, g = sigs[i]!;
    if (g === NOT_KEYABLE) continue;
    // the fields in valueFields' order (src, dst, sport, dport, proto) shifted in, as splitValue does; the
    // sig's bits say which the shape has (1 src, 2 dst, 4 proto, 8 sport, 16 dport)
    let ph = 0, pl = 0;
    if (g & 1) pl = src[i]!;
    if (g & 2) { ph = pl; pl = dst[i]!; }
    let vh = ph, vl = pl;
    if (g & 8) { vh = ((vh << 16) | (vl >>> 16)) >>> 0; vl = ((vl << 16) | (sport[i]! & 0xffff)) >>> 0; }
    if (g & 16) { vh = ((vh << 16) | (vl >>> 16)) >>> 0; vl = ((vl << 16) | (dport[i]! & 0xffff)) >>> 0; }
    if (g & 4) {
      const x = proto[i]!;
      vh = ((vh << 8) | (vl >>> 24)) >>> 0; vl = ((vl << 8) | x) >>> 0;
      ph = ((ph << 8) | (pl >>> 24)) >>> 0; pl = ((pl << 8) | x) >>> 0;
    }
    // (keys over 64 bits, src dst and ports, are found by their ids: their values here are not used)
    partHi[at + k] = ph; partLo[at + k] = pl; hi[at + k] = vh; lo[at + k] = vl;
  }
}

/** Each row's Shape.sig (NOT_KEYABLE: none), for every row of a block, once per block: what computeShape says of its rule. */
const blockSigs = new WeakMap<RuleBlock, { count: number; sigs: Uint8Array }>();
function packedSigs(b: RuleBlock): Uint8Array {
  const known = blockSigs.get(b);
  if (known && known.count === b.count) return known.sigs;
  const sigs = new Uint8Array(b.count);
  const flags = b.flags, bits = b.bits, verdict = b.verdict, sport = b.sport, dport = b.dport;
  const unkeyable = PF.IN | PF.OUT | PF.SRC_INV | PF.DST_INV | PF.PROTO_INV | PF.SPORT_INV | PF.DPORT_INV;
  for (let i = 0; i < b.count; i++) {
    const v = verdict[i]!, f = flags[i]!;
    let sig: number = NOT_KEYABLE;
    if ((v === PV.ACCEPT || v === PV.DROP || v === PV.JUMP) && !(f & unkeyable) && (f & (PF.SRC | PF.DST | PF.PROTO))
      && (!(f & PF.SRC) || (bits[i]! & 0xff) === 32) && (!(f & PF.DST) || (bits[i]! >>> 8) === 32)
      && (!(f & PF.SPORT) || (sport[i]! & 0xffff) === sport[i]! >>> 16) && (!(f & PF.DPORT) || (dport[i]! & 0xffff) === dport[i]! >>> 16)) {
      sig = (f & PF.SRC ? 1 : 0) | (f & PF.DST ? 2 : 0) | (f & PF.PROTO ? 4 : 0) | (f & PF.SPORT ? 8 : 0) | (f & PF.DPORT ? 16 : 0) | ((f & PF.L4 ? (f & PF.UDP ? 2 : 1) : 0) << 5);
      if (SHAPE_BY_SIG[sig] === undefined) packedShape(b, i);
    }
    sigs[i] = sig;
  }
  blockSigs.set(b, { count: b.count, sigs });
  return sigs;
}

/** Are the search values (hi, lo) of rows [from, to) of `rk` all distinct (values of at most 53 bits)? */
function distinct(rk: RuleKeys, from: number, to: number, bits: number): boolean {
  // keys of at most 32 bits (one address) sort as u32s, a copy of the values straight from their column
  const v = bits <= 32 ? rk.lo.slice(from, to) : new Float64Array(to - from);
  if (bits > 32) for (let k = from; k < to; k++) v[k - from] = rk.hi[k]! * 0x100000000 + rk.lo[k]!;
  v.sort();
  for (let k = 1; k < v.length; k++) if (v[k] === v[k - 1]) return false;
  return true;
}

/**
 * The first rule of each key in a run: `seen(j)` asks whether rule j's key
 * came before, `add(j)` records rule j as its key's first; `order` holds the
 * first rules in the order they came. FirstKeys keys rules by their search
 * value (hi, lo) in an open-addressing table of rule indexes (no object per
 * key: a run of 100k keys is two typed arrays); FirstIds by an id string
 * (keys over 64 bits).
 */
class FirstKeys {
  readonly order: number[] = [];
  private slots = new Int32Array(64);
  private key = 0;
  constructor(private readonly hi: Uint32Array, private readonly lo: Uint32Array, private readonly base: number) {}
  private hash(k: number): number { return Math.imul(this.lo[k]! ^ Math.imul(this.hi[k]!, 0x85ebca77), 0x9e3779b1) >>> 0; }
  seen(j: number): boolean {
    const k = j - this.base, h = this.hi[k]!, l = this.lo[k]!;
    const mask = this.slots.length - 1;
    for (let p = this.hash(k) & mask; ; p = (p + 1) & mask) {
      const at = this.slots[p]!;
      if (at === 0) { this.key = p; return false; }
      const o = at - 1 - this.base;
      if (this.lo[o] === l && this.hi[o] === h) return true;
    }
  }
  /** after seen(j) was false */
  add(j: number): void {
    this.slots[this.key] = j + 1;
    this.order.push(j);
    if (this.order.length * 2 > this.slots.length) this.grow();
  }
  private grow(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    const mask = this.slots.length - 1;
    for (const at of old) {
      if (at === 0) continue;
      let p = this.hash(at - 1 - this.base) & mask;
      while (this.slots[p] !== 0) p = (p + 1) & mask;
      this.slots[p] = at;
    }
  }
}

class FirstIds {
  readonly order: number[] = [];
  private readonly ids = new Set<string | number>();
  private id: string | number = '';
  seen(_j: number, id?: string | number): boolean { this.id = id!; return this.ids.has(id!); }
  add(j: number): void { this.ids.add(this.id); this.order.push(j); }
}

/** Write the key of rule `r` (fields outside the shape zero; without ports when not `withPorts`) at `at`. */
function writeKey(out: Buffer, at: number, r: Rule, s: Shape, withPorts: boolean): void {
  const k = s.key;
  if (s.src) out.writeUInt32LE(srcOf(r), at + k.src);
  if (s.dst) out.writeUInt32LE(dstOf(r), at + k.dst);
  if (s.proto) out[at + k.proto] = protoOf(r)!;
  if (withPorts && (s.sport || s.dport)) {
    const [sport, dport] = ports(r, s);
    if (s.sport) out.writeUInt16LE(sport, at + k.sport);
    if (s.dport) out.writeUInt16LE(dport, at + k.dport);
  }
}

/**
 * Room kept in a chain's last run (one that ends the chain), and in the
 * counters, for rules appended later without recompiling: `iptables -A` of a
 * rule of the run's shape only adds its key to the run's maps (compat/fast-append.ts).
 */
export const APPEND_ROOM = 1024;

/** What appending to a chain's last run needs to know of it (stored with the generation). */
export interface TailRun {
  chain: string;
  /** the kernel hash maps appended keys go into (full keys, and address parts of tcp/udp runs) */
  map: string;
  ipMap?: string;
  /**
   * a compact run's tables (keys of the rules compiled; the program looks in
   * `map` and `ipMap` after them, once `flag`'s u32 is not zero)
   */
  base?: { map: string; layout: CompactLayout; ipMap?: string; ipLayout?: CompactLayout; flag: string };
  /** the shape of its rules (Shape.sig), and for tcp/udp runs their protocol */
  sig: number;
  proto?: number;
  targets: string[];
  /** some rule of the run jumps: then every key is in the run once */
  jumps: boolean;
}

/** A run that takes appended rules: a hash lookup or compact table that ends its chain. */
export const isTailRun = (chain: Chain, run: ExactRun): boolean => run.kind !== 'tree' && run.to === chainLength(chain);

/** The maps for appended keys of a compact run (a hash run takes them into its own maps). */
const deltaNames = (run: ExactRun): { map: string; ipMap?: string; flag: string } => ({
  map: run.map.replace(/^ex_/, 'exd_'), ipMap: run.ipMap?.replace(/^exip_/, 'exdip_'), flag: run.map.replace(/^ex_/, 'exf_'),
});

export function tailRun(chain: Chain, run: ExactRun): TailRun {
  const rows = packedRows(chain);
  const proto = !run.shape.l4 ? undefined : rows ? rows.block.proto[rows.from + run.from] : protoOf(chain.rules[run.from]!);
  const common = { chain: chain.name, sig: run.shape.sig, proto, targets: run.targets, jumps: run.targets.length > 0 };
  if (run.kind !== 'compact') return { ...common, map: run.map, ipMap: run.ipMap };
  const d = deltaNames(run);
  return { ...common, map: d.map, ipMap: d.ipMap, base: { map: run.map, layout: run.compact!.full.layout, ipMap: run.ipMap, ipLayout: run.compact!.part?.layout, flag: d.flag } };
}

/** Every map of a tail run, by name (they are pinned with the generation). */
export const tailMaps = (t: TailRun): string[] =>
  [t.map, t.ipMap, t.base?.map, t.base?.ipMap, t.base?.flag].filter((n): n is string => n !== undefined);

/**
 * The map entries a rule appended after `tail` (as its last rule) adds, with
 * counter slot `slot`; undefined when the rule is not of the run's shape or
 * jumps to a chain the run does not dispatch to.
 */
export function appendEntries(tail: TailRun, r: Rule, slot: number): { key: Buffer; value: Buffer; ipKey?: Buffer; jump: boolean; full: [number, number]; part: [number, number] } | undefined {
  const s = computeShape(r);
  if (!s || s.sig !== tail.sig || (s.l4 && protoOf(r) !== tail.proto)) return undefined;
  const v = r.verdict;
  const target = v.kind === 'jump' ? tail.targets.indexOf(v.chain) : -1;
  if (v.kind === 'jump' && target < 0) return undefined;
  const key = Buffer.alloc(s.key.size);
  writeKey(key, 0, r, s, true);
  const value = Buffer.alloc(8);
  value.writeUInt32LE(slot, 0);
  value.writeUInt32LE(v.kind === 'jump' ? JUMP_BASE + target : v.kind === 'accept' ? NF_ACCEPT : NF_DROP, 4);
  let ipKey: Buffer | undefined;
  if (tail.ipMap) { ipKey = Buffer.alloc(s.key.size); writeKey(ipKey, 0, r, s, false); }
  return { key, value, ipKey, jump: v.kind === 'jump', full: splitValue(r, valueFields(s, true)), part: splitValue(r, valueFields(s, false)) };
}

/**
 * The run's keys as compact tables (cgen/compact.ts): the full keys, with
 * room for each first rule's value, and for tcp/udp runs the address parts;
 * undefined when the keys do not spread (the run stays a hash lookup).
 */
function compactTables(chain: Chain, run: ExactRun): { full: CompactTable; part?: CompactTable } | undefined {
  const { first, ipPart } = firstByKey(chain, run);
  const { rk, lo } = runKeys.get(run)!;
  const table = (rules: ArrayLike<number>, withPorts: boolean, valued: boolean): CompactTable | undefined => {
    const his = new Uint32Array(rules.length), los = new Uint32Array(rules.length);
    const hi = withPorts ? rk.hi : rk.partHi, low = withPorts ? rk.lo : rk.partLo;
    for (let i = 0; i < rules.length; i++) { const k = rules[i]! - lo; his[i] = hi[k]!; los[i] = low[k]!; }
    return buildCompact(his, los, keyBits(run.shape, withPorts) > 32, valued);
  };
  const full = table(first, true, true);
  if (!full) return undefined;
  if (!run.ipMap) return { full };
  const part = table(ipPart, false, false);
  return part && { full, part };
}

/** Each run's first rule (its index in the chain) of each key, as findExactRuns found them, and the chain's RuleKeys (a 100k-rule run is not walked again). */
const runKeys = new WeakMap<ExactRun, { first: ArrayLike<number>; rk: RuleKeys; lo: number }>();

/**
 * The first rule of each key (it matches first), and for tcp/udp runs one
 * rule of each address/protocol part, by their indices in the chain, in order.
 */
function firstByKey(chain: Chain, run: ExactRun): { first: ArrayLike<number>; ipPart: ArrayLike<number> } {
  const known = runKeys.get(run)!;
  if (!run.ipMap) return { first: known.first, ipPart: [] };
  const { rk, lo } = known;
  const narrow = run.shape.partBits <= 64;
  const parts = narrow ? new FirstKeys(rk.partHi, rk.partLo, lo) : new FirstIds();
  for (let i = run.from; i < run.to; i++) if (!parts.seen(i, narrow ? undefined : keyId(chain.rules[i]!, run.shape, false))) parts.add(i);
  return { first: known.first, ipPart: parts.order };
}

/**
 * The run's maps: full key → { counter slot, verdict } (first rule wins), and
 * for tcp/udp runs the address/protocol part → 1; `room` more entries each
 * for rules appended later.
 */
export function exactMaps(chain: Chain, run: ExactRun, slotAt: (ruleIndex: number) => number, room = 0): MapSpecOut[] {
  const { first, ipPart } = firstByKey(chain, run);
  if (run.kind === 'compact') return compactMaps(chain, run, first, slotAt, room);
  // keys and values back to back, as one batch update takes them
  const size = run.shape.key.size;
  const keys = Buffer.alloc(size * first.length);
  const values = Buffer.alloc(8 * first.length);
  const verdict = verdictValues(run, chain);
  for (let n = 0; n < first.length; n++) {
    const i = first[n]!, r = chain.rules[i]!;
    writeKey(keys, n * size, r, run.shape, true);
    values.writeUInt32LE(slotAt(i), n * 8);
    values.writeUInt32LE(verdict(i), n * 8 + 4);
  }
  const maps: MapSpecOut[] = [{ name: run.map, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 8, maxEntries: first.length + room, flags: 0, keys, values, count: first.length }];
  if (run.ipMap) {
    const ipKeys = Buffer.alloc(size * ipPart.length);
    for (let k = 0; k < ipPart.length; k++) writeKey(ipKeys, size * k, chain.rules[ipPart[k]!]!, run.shape, false);
    maps.push({ name: run.ipMap, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 1, maxEntries: ipPart.length + room, flags: 0, keys: ipKeys, values: Buffer.alloc(ipPart.length, 1), count: ipPart.length });
  }
  return maps;
}

/** A hit's verdict value for rule k of the chain, a rule of the run (NF_DROP, NF_ACCEPT or JUMP_BASE + the index of its target). */
function verdictValues(run: ExactRun, chain: Chain): (k: number) => number {
  const target = new Map(run.targets.map((t, i) => [t, JUMP_BASE + i]));
  // a packed chain's verdicts from its columns (the chain asked once, not once a key)
  const rows = packedRows(chain);
  if (rows) {
    const b = rows.block, at = rows.from;
    return (k) => { const v = b.verdict[at + k]!; return v === PV.JUMP ? target.get(b.targetOf(at + k)!)! : v === PV.ACCEPT ? NF_ACCEPT : NF_DROP; };
  }
  return (k) => { const v = chain.rules[k]!.verdict; return v.kind === 'jump' ? target.get(v.chain)! : v.kind === 'accept' ? NF_ACCEPT : NF_DROP; };
}

/** The chain that rule k of the chain (a rule that jumps) jumps to. */
function targetsOf(chain: Chain): (k: number) => string {
  const rows = packedRows(chain);
  if (rows) { const b = rows.block, at = rows.from; return (k) => b.targetOf(at + k)!; }
  return (k) => (chain.rules[k]!.verdict as { chain: string }).chain;
}

/** BPF_F_MMAPABLE: user space may map the array (an append reads a compact table's bucket, not all of it). */
export const BPF_F_MMAPABLE = 1 << 10;

/** A single-element array map holding `bytes`. */
const arrayOf = (name: string, bytes: Buffer, flags = 0): MapSpecOut =>
  ({ name, type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: bytes.length, maxEntries: 1, flags, keys: Buffer.alloc(4), values: bytes, count: 1 });

/**
 * A compact run's maps: its tables, each rule's value written at its key's
 * entry; with `room`, empty hash maps for appended keys and their flag.
 */
function compactMaps(chain: Chain, run: ExactRun, first: ArrayLike<number>, slotAt: (ruleIndex: number) => number, room: number): MapSpecOut[] {
  const { full, part } = run.compact!;
  // the table's bytes are this compilation's own: the values go in where they are
  const bytes = full.bytes;
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const verdict = verdictValues(run, chain);
  for (let i = 0; i < first.length; i++) {
    const k = first[i]!;
    const w = valueWord(full.layout, full.position[i]!);
    words[w] = slotAt(k);
    words[w + 1] = verdict(k);
  }
  const maps = [arrayOf(run.map, bytes, BPF_F_MMAPABLE)];
  if (part) maps.push(arrayOf(run.ipMap!, part.bytes, BPF_F_MMAPABLE));
  if (room > 0) {
    const d = deltaNames(run), size = run.shape.key.size, none = Buffer.alloc(0);
    maps.push({ name: d.map, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 8, maxEntries: room, flags: 0, keys: none, values: none, count: 0 });
    if (d.ipMap) maps.push({ name: d.ipMap, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 1, maxEntries: room, flags: 0, keys: none, values: none, count: 0 });
    maps.push(arrayOf(d.flag, Buffer.alloc(4)));
  }
  return maps;
}

/** A field of a search value: its summary offset, load size and width, and how a rule gives it. */
type ValueField = { at: number; size: 1 | 2 | 4; bits: number; of: (r: Rule) => number };
/** The fields of a shape's search value, most significant first. */
const valueFields = (s: Shape, withPorts: boolean): readonly ValueField[] => (withPorts ? s.fields : s.partFields);
/** valueFields, made once for each shape (shapeOf). */
function fieldsOf(s: Shape, withPorts: boolean): ValueField[] {
  const out: ValueField[] = [];
  if (s.src) out.push({ at: S.SADDR, size: 4, bits: 32, of: srcOf });
  if (s.dst) out.push({ at: S.DADDR, size: 4, bits: 32, of: dstOf });
  if (withPorts && s.sport) out.push({ at: S.SPORT, size: 2, bits: 16, of: (r) => ports(r, s)[0] });
  if (withPorts && s.dport) out.push({ at: S.DPORT, size: 2, bits: 16, of: (r) => ports(r, s)[1] });
  if (s.proto) out.push({ at: S.PROTO, size: 1, bits: 8, of: (r) => protoOf(r)! });
  return out;
}

const keyBits = (s: Shape, withPorts: boolean): number => (withPorts ? s.bits : s.partBits);

/**
 * A rule's search value as its high and low 32 bits (as valueOf, without
 * BigInt: the compact tables of 100k keys are built with it).
 */
function splitValue(r: Rule, fields: readonly ValueField[]): [number, number] {
  splitInto(r, fields, ONE_HI, ONE_LO, 0);
  return [ONE_HI[0]!, ONE_LO[0]!];
}
const ONE_HI = new Uint32Array(1), ONE_LO = new Uint32Array(1);

/** splitValue's two halves written to his[k] and los[k] (no pair made: once per rule of a run). */
function splitInto(r: Rule, fields: readonly ValueField[], his: Uint32Array, los: Uint32Array, k: number): void {
  let hi = 0, lo = 0;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!, x = f.of(r) >>> 0;
    if (f.bits === 32) { hi = lo; lo = x; } else { hi = ((hi << f.bits) | (lo >>> (32 - f.bits))) >>> 0; lo = ((lo << f.bits) | x) >>> 0; }
  }
  his[k] = hi; los[k] = lo;
}

/** A rule's search value: its fields side by side in one unsigned 64-bit number. */
function valueOf(r: Rule, fields: readonly ValueField[]): bigint {
  let v = 0n;
  for (const f of fields) v = (v << BigInt(f.bits)) | BigInt(f.of(r) >>> 0);
  return v;
}

/** r2 = the packet's search value (as valueOf builds a rule's). */
function buildValue(a: Asm, s: Shape, withPorts: boolean): void {
  valueFields(s, withPorts).forEach((f, i) => {
    if (i === 0) { a.ldx(f.size, R2, R9, f.at); return; }
    a.alu64('lsh', R2, { imm: f.bits }).ldx(f.size, R3, R9, f.at).alu64('or', R2, R3);
  });
}

/** Jump to `target` when r2 `op` v (unsigned 64-bit). */
function cmpValue(a: Asm, op: 'jeq' | 'jge', v: bigint, target: string): void {
  if (v <= 0x7fffffffn) a.jmp(op, R2, Number(v), target);
  else a.ldImm64(R3, v).jmpReg(op, R2, R3, target);
}

/** A binary search of r2 among sorted `values`: on to `hit(i)` for values[i], else to `miss`. */
function emitSearch(a: Asm, values: readonly bigint[], hit: (i: number) => string, miss: string): void {
  const node = (lo: number, hi: number): void => {
    if (hi - lo <= 3) {
      for (let i = lo; i < hi; i++) cmpValue(a, 'jeq', values[i]!, hit(i));
      a.ja(miss);
      return;
    }
    const mid = (lo + hi) >> 1, upper = a.fresh('xsup');
    cmpValue(a, 'jge', values[mid]!, upper);
    node(lo, mid);
    a.label(upper);
    node(mid, hi);
  };
  node(0, values.length);
}

/** Build the lookup key for the packet at r10+keyOff (laid out as the shape's key; fields outside the shape stay zero). */
function buildKey(a: Asm, s: Shape, keyOff: number, withPorts: boolean): void {
  const k = s.key;
  for (let o = 0; o < KEY_MAX; o += 8) a.st(8, R10, keyOff + o, 0);
  if (s.src) a.ldx(4, R1, R9, S.SADDR).stx(4, R10, keyOff + k.src, R1);
  if (s.dst) a.ldx(4, R1, R9, S.DADDR).stx(4, R10, keyOff + k.dst, R1);
  if (s.proto) a.ldx(1, R1, R9, S.PROTO).stx(1, R10, keyOff + k.proto, R1);
  if (withPorts && s.sport) a.ldx(2, R1, R9, S.SPORT).stx(2, R10, keyOff + k.sport, R1);
  if (withPorts && s.dport) a.ldx(2, R1, R9, S.DPORT).stx(2, R10, keyOff + k.dport, R1);
}

function lookup(a: Asm, map: string, keyOff: number): void {
  a.ldMapFd(R1, map).movReg(R2, R10).alu64('add', R2, { imm: keyOff }).call(Helper.map_lookup_elem);
}

/** Conditional jumps the run's code holds, for the chunking estimate. */
export const runBranches = (run: ExactRun): number =>
  (run.kind === 'tree' ? 2 * (run.to - run.from) : 0) + (run.kind === 'compact' ? 2 * (run.compact!.full.layout.scan + (run.compact!.part?.layout.scan ?? 0)) + 8 : 0) + 12 + 3 * run.targets.length;

/**
 * Emit the run. `counters` is the name of the counter map and `slots` its
 * size; `leave` emits the code that returns verdict r0 (0 or 1) from the
 * current function; `jump(chain, skip)` the call of a chain and what follows
 * it (on to `skip` when the chain returns). `appendable`: the run keeps maps
 * for appended rules (exactMaps' room), which a compact run looks in after
 * its tables.
 */
export function emitExactRun(a: Asm, chain: Chain, run: ExactRun, slotAt: (ruleIndex: number) => number, keyOff: number, counters: string, slots: number, leave: () => void, jump: (chain: string, skip: string) => void, appendable = false): void {
  const skip = a.fresh('xskip');
  const s = run.shape;
  if (run.kind === 'tree') {
    a.note(`exact-match run: rules ${run.from + 1}-${run.to} as a binary search`);
    emitTreeRun(a, chain, run, slotAt, counters, skip, leave, jump);
    a.label(skip);
    return;
  }
  const compact = run.kind === 'compact';
  const delta = compact && appendable ? deltaNames(run) : undefined;
  a.note(`exact-match run: rules ${run.from + 1}-${run.to} as ${compact ? 'a compact table' : 'one hash lookup'}${delta ? ' (and a hash lookup of appended rules)' : ''}`);
  const short = a.fresh('xshort'), hit = a.fresh('xhit');
  if (s.l4) {
    a.ldx(2, R1, R9, S.FRAGOFF);
    if (s.l4 === 'tcp') a.jmp32('jeq', R1, 1, short);
    a.jmp32('jne', R1, 0, skip);
    a.ldx(4, R1, R9, S.L4AVAIL).jmp32('jlt', R1, s.l4 === 'tcp' ? 20 : 8, short);
  }
  // r2, r0 = the first rule's counter slot and verdict value, on to `hit`
  const hashed = (map: string): void => {
    buildKey(a, s, keyOff, true);
    lookup(a, map, keyOff);
    a.jmp('jeq', R0, 0, skip);
    a.ldx(4, R2, R0, 0).ldx(4, R0, R0, 4);
  };
  if (compact) {
    const { full } = run.compact!;
    const found = a.fresh('xfound'), miss = a.fresh('xmiss');
    buildValue(a, s, true);
    emitCompactSearch(a, run.map, full.layout, found, miss);
    a.label(miss);
    if (delta) {
      flagSet(a, delta.flag, skip);
      hashed(delta.map);
      a.ja(hit);
    } else a.ja(skip);
    a.label(found);
    emitEntryValue(a, run.map, full.layout, skip);
    a.ldx(4, R2, R0, 0).ldx(4, R0, R0, 4);
  } else hashed(run.map);
  a.label(hit);
  emitHit(a, run, counters, slots, skip, leave, jump);
  if (s.l4) {
    // unreadable header: iptables drops it at the first rule whose address/protocol part matches
    a.label(short);
    const drop = a.fresh('xdrop');
    const hashedPart = (map: string): void => {
      buildKey(a, s, keyOff, false);
      lookup(a, map, keyOff);
      a.jmp('jeq', R0, 0, skip);
    };
    if (compact) {
      const miss = a.fresh('xpmiss');
      buildValue(a, s, false);
      emitCompactSearch(a, run.ipMap!, run.compact!.part!.layout, drop, miss);
      a.label(miss);
      if (delta) { flagSet(a, delta.flag, skip); hashedPart(delta.ipMap!); } else a.ja(skip);
    } else hashedPart(run.ipMap!);
    a.label(drop).mov64(R0, NF_DROP);
    leave();
  }
  a.label(skip);
}

/** On to `skip` unless the u32 of array map `flag` is set (some rule was appended). */
function flagSet(a: Asm, flag: string, skip: string): void {
  a.ldMapValue(R1, flag, 0).ldx(4, R1, R1, 0).jmp32('jeq', R1, 0, skip);
}

/**
 * The run as a binary search over its keys' values (the same decisions as
 * the hash lookup: first rule of each key; for tcp/udp runs the header checks
 * and the drop of unreadable headers at a matching address part).
 */
function emitTreeRun(a: Asm, chain: Chain, run: ExactRun, slotAt: (ruleIndex: number) => number, counters: string, skip: string, leave: () => void, jump: (chain: string, skip: string) => void): void {
  const s = run.shape;
  const { first, ipPart } = firstByKey(chain, run);
  const full = valueFields(s, true), part = valueFields(s, false);
  const sorted = (indices: ArrayLike<number>, withPorts: boolean): { v: bigint; r: Rule; k: number }[] =>
    Array.from(indices, (k) => ({ v: valueOf(chain.rules[k]!, withPorts ? full : part), r: chain.rules[k]!, k })).sort((x, y) => (x.v < y.v ? -1 : x.v > y.v ? 1 : 0));
  const short = a.fresh('xtshort');
  if (s.l4) {
    a.ldx(2, R1, R9, S.FRAGOFF);
    if (s.l4 === 'tcp') a.jmp32('jeq', R1, 1, short);
    a.jmp32('jne', R1, 0, skip);
    a.ldx(4, R1, R9, S.L4AVAIL).jmp32('jlt', R1, s.l4 === 'tcp' ? 20 : 8, short);
  }
  const keys = sorted(first, true);
  const hits = keys.map(() => a.fresh('xthit'));
  buildValue(a, s, true);
  emitSearch(a, keys.map((k) => k.v), (i) => hits[i]!, skip);
  keys.forEach(({ r, k }, i) => {
    a.label(hits[i]!);
    a.ldMapValue(R1, counters, slotAt(k) * 16).mov64(R3, 1).atomicAdd(8, R1, 0, R3);
    a.ldx(4, R3, R9, S.SKBLEN).atomicAdd(8, R1, 8, R3);
    const v = r.verdict;
    if (v.kind === 'jump') { jump(v.chain, skip); return; }
    a.mov64(R0, v.kind === 'accept' ? NF_ACCEPT : NF_DROP);
    leave();
  });
  if (!s.l4) return;
  // unreadable header: iptables drops it at the first rule whose address/protocol part matches
  a.label(short);
  const parts = sorted(ipPart, false);
  const drop = a.fresh('xtdrop');
  buildValue(a, s, false);
  emitSearch(a, parts.map((p) => p.v), () => drop, skip);
  a.label(drop).mov64(R0, NF_DROP);
  leave();
}

/** A hit: r2 = the rule's counter slot, r0 = its verdict value (NF_DROP, NF_ACCEPT or JUMP_BASE + a target's index). */
function emitHit(a: Asm, run: ExactRun, counters: string, slots: number, skip: string, leave: () => void, jump: (chain: string, skip: string) => void): void {
  a.jmp('jge', R2, slots, skip); // never: keeps the counter offset provably in bounds
  a.alu64('lsh', R2, { imm: 4 });
  a.ldMapValue(R1, counters, 0).alu64('add', R1, R2);
  a.mov64(R3, 1).atomicAdd(8, R1, 0, R3);
  a.ldx(4, R3, R9, S.SKBLEN).atomicAdd(8, R1, 8, R3);
  if (run.targets.length === 0) { leave(); return; }
  const jumps = a.fresh('xjump');
  a.jmp('jge', R0, JUMP_BASE, jumps);
  leave();
  // r0 - JUMP_BASE: which target; a binary tree of compares down to one call each
  a.label(jumps).alu64('sub', R0, { imm: JUMP_BASE });
  const tree = (lo: number, hi: number): void => {
    if (hi - lo === 1) { jump(run.targets[lo]!, skip); return; }
    const mid = (lo + hi) >> 1, upper = a.fresh('xjhi');
    a.jmp('jge', R0, mid, upper);
    tree(lo, mid);
    a.label(upper);
    tree(mid, hi);
  };
  tree(0, run.targets.length);
}
