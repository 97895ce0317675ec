/**
 * Compact hash tables: a set of distinct keys of at most 64 bits, each with
 * an optional 8-byte value, laid out in one byte buffer that becomes the one
 * value of an array map. The program finds a key with a multiplicative hash
 * (two or four ALU instructions), two loads of its bucket's bounds and a few
 * unrolled compares; there is no helper call, and the memory is the keys and
 * values themselves plus 4 bytes a bucket (a kernel hash map spends 48 bytes
 * of element header and 16 of bucket on every key).
 *
 * Layout (little-endian u32 words, as all map data of the code generator):
 *   [0, 4 * (2^bits + 1))   bucket b's entries are [start[b], start[b + 1])
 *   [at, ...)               the entries, `entry` bytes each, grouped by
 *                           bucket: the key (u32, or u64 for wide keys), then
 *                           the value's two u32 when the table has values;
 *                           then `scan - 1` zero entries, so the unrolled
 *                           steps never read past the value (the verifier
 *                           checks every load against its size)
 * The hash of a key (hi, lo): x = wide ? lo ^ hi * mix : lo (32-bit
 * products), bucket = (x * mul) >> (32 - bits). The build tries a few fixed
 * multipliers (the same ruleset always compiles to the same table) and two
 * table sizes, and takes the first whose longest bucket is at most SCAN_MAX;
 * when none is (keys made to collide), the caller keeps a kernel hash map.
 * Pure.
 */
import { type Asm, R0, R1, R2, R3, R4, R5 } from './asm';

/** What the program and a reader need to know of a table (everything but its bytes). */
export interface CompactLayout {
  /** keys of more than 32 bits: stored as u64 and mixed with `mix` first */
  wide: boolean;
  mix: number;
  mul: number;
  /** 2^bits buckets */
  bits: number;
  /** keys */
  count: number;
  /** the longest bucket: the search's unrolled steps */
  scan: number;
  /** bytes of an entry: the key (4 or 8), then 8 bytes of value when `valued` */
  entry: number;
  valued: boolean;
  /** byte offset of the first entry */
  at: number;
}

export interface CompactTable {
  layout: CompactLayout;
  /** the map value: bucket bounds and keys written, values zero (the caller writes them at `position`) */
  bytes: Buffer;
  /** the entry index of each key, in the order the keys were given */
  position: Uint32Array;
}

/** The longest bucket a table may have: the search's unrolled steps. */
export const SCAN_MAX = 12;

/** Odd 32-bit multipliers, tried in order. */
const MULTIPLIERS = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1, 0xd3a2646d, 0xfd7046c5, 0xb55a4f09];

/** The bucket of key (hi, lo) under a layout's hash. */
export function bucketOf(l: Pick<CompactLayout, 'wide' | 'mix' | 'mul' | 'bits'>, hi: number, lo: number): number {
  const x = l.wide ? (lo ^ Math.imul(hi, l.mix)) : lo;
  return Math.imul(x, l.mul) >>> (32 - l.bits);
}

const keyBytes = (l: CompactLayout): number => (l.wide ? 8 : 4);

/**
 * The table of keys (his[i], los[i]) — distinct; his all zero unless
 * `wide` — with room for an 8-byte value per key when `valued`; undefined
 * when no hash tried spreads them into buckets of at most `scanMax`.
 */
export function buildCompact(his: Uint32Array, los: Uint32Array, wide: boolean, valued: boolean, scanMax = SCAN_MAX): CompactTable | undefined {
  const n = los.length;
  const bucket = new Uint32Array(n);
  const least = Math.max(1, Math.ceil(Math.log2(Math.max(n, 2))));
  for (const bits of [least, least + 1]) {
    if (bits > 28) return undefined;
    const counts = new Uint32Array((1 << bits) + 1);
    for (let t = 0; t < MULTIPLIERS.length; t++) {
      const hash = { wide, mix: MULTIPLIERS[(t + 4) % MULTIPLIERS.length]!, mul: MULTIPLIERS[t]!, bits };
      counts.fill(0);
      let longest = 0, i = 0;
      // bucketOf, inline (a call per key is most of a 100k-key build in cold code)
      const shift = 32 - bits, mix = hash.mix, mul = hash.mul;
      for (; i < n; i++) {
        const b = Math.imul(wide ? (los[i]! ^ Math.imul(his[i]!, mix)) : los[i]!, mul) >>> shift;
        bucket[i] = b;
        const c = ++counts[b]!;
        if (c > longest) { longest = c; if (c > scanMax) break; }
      }
      if (i < n) continue;
      return lay({ ...hash, count: n, scan: Math.max(1, longest), entry: (wide ? 8 : 4) + (valued ? 8 : 0), valued, at: (4 * ((1 << bits) + 1) + 7) & ~7 }, counts, bucket, his, los);
    }
  }
  return undefined;
}

/** The bytes of a table of layout `l` (its map value's size): bounds, entries, and the padding for the unrolled steps. */
export const tableBytes = (l: CompactLayout): number => l.at + l.entry * (l.count + l.scan - 1);

function lay(l: CompactLayout, counts: Uint32Array, bucket: Uint32Array, his: Uint32Array, los: Uint32Array): CompactTable {
  const buckets = 1 << l.bits;
  const size = tableBytes(l);
  const words = new Uint32Array(size / 4);
  // counts become each bucket's start (and counts[buckets] the end of the last)
  let acc = 0;
  for (let b = 0; b < buckets; b++) { const c = counts[b]!; counts[b] = acc; words[b] = acc; acc += c; }
  counts[buckets] = acc;
  words[buckets] = acc;
  const position = new Uint32Array(l.count);
  const at = l.at / 4, step = l.entry / 4;
  for (let i = 0; i < l.count; i++) {
    const p = counts[bucket[i]!]!++;
    position[i] = p;
    words[at + p * step] = los[i]!;
    if (l.wide) words[at + p * step + 1] = his[i]!;
  }
  return { layout: l, bytes: Buffer.from(words.buffer, 0, size), position };
}

/** The u32 word index of entry `p`'s value (its first word) in a table's words. */
export const valueWord = (l: CompactLayout, p: number): number => (l.at + p * l.entry + keyBytes(l)) / 4;

/** The entry index of key (hi, lo) in table bytes `t`, or -1: what the program's search finds. */
export function compactFind(l: CompactLayout, t: Buffer, hi: number, lo: number): number {
  const b = bucketOf(l, hi, lo);
  const end = t.readUInt32LE(4 * b + 4);
  for (let p = t.readUInt32LE(4 * b); p < end; p++) {
    const o = l.at + p * l.entry;
    if (t.readUInt32LE(o) === lo >>> 0 && (!l.wide || t.readUInt32LE(o + 4) === hi >>> 0)) return p;
  }
  return -1;
}

/**
 * Search the packet's key value r2 (zero-extended when not wide) in the
 * table that is map `map`'s value: on to `hit` with r4 the entry's index,
 * else to `miss`. Uses r0-r5; constant verifier work (scan steps).
 */
export function emitCompactSearch(a: Asm, map: string, l: CompactLayout, hit: string, miss: string): void {
  if (l.wide) a.movReg(R3, R2).alu64('rsh', R3, { imm: 32 }).alu32('mul', R3, { imm: l.mix | 0 }).alu32('xor', R3, R2);
  else a.alu32('mov', R3, R2);
  a.alu32('mul', R3, { imm: l.mul | 0 });
  a.alu32('rsh', R3, { imm: 32 - l.bits });
  a.alu64('lsh', R3, { imm: 2 });
  a.ldMapValue(R1, map, 0).alu64('add', R1, R3);
  a.ldx(4, R4, R1, 0).ldx(4, R5, R1, 4);
  // a start of `count` is an empty bucket at the end; the check also bounds r4 for the verifier
  a.jmp('jge', R4, l.count, miss);
  a.movReg(R1, R4).alu64('mul', R1, { imm: l.entry });
  a.ldMapValue(R0, map, l.at).alu64('add', R0, R1);
  for (let j = 0; j < l.scan; j++) {
    a.jmpReg('jge', R4, R5, miss);
    a.ldx(l.wide ? 8 : 4, R1, R0, j * l.entry);
    a.jmpReg('jeq', R1, R2, hit);
    if (j < l.scan - 1) a.alu64('add', R4, { imm: 1 });
  }
  a.ja(miss);
}

/**
 * After emitCompactSearch's hit (r4 the entry): r0 = the address of the
 * entry's value. r4 is first masked, so every step's hit reaches here in the
 * same verifier state (one walk of what follows), and checked, which never
 * fails, to bound the address; on to `miss` if it did.
 */
export function emitEntryValue(a: Asm, map: string, l: CompactLayout, miss: string): void {
  const mask = 2 ** Math.ceil(Math.log2(l.count + l.scan)) - 1;
  a.alu64('and', R4, { imm: mask });
  a.jmp('jge', R4, l.count, miss);
  a.movReg(R1, R4).alu64('mul', R1, { imm: l.entry });
  a.ldMapValue(R0, map, l.at + keyBytes(l)).alu64('add', R0, R1);
}
