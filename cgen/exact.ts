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
interface Shape { src: boolean; dst: boolean; proto: boolean; sport: boolean; dport: boolean; l4: 'tcp' | 'udp' | ''; sig: number; key: KeyLayout }

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
  const src = !!ip.src, dst = !!ip.dst, proto = !!ip.proto;
  if (!src && !dst && !proto) return undefined;
  const sig = +src | (+dst << 1) | (+proto << 2) | (+sport << 3) | (+dport << 4) | ((l4 === 'tcp' ? 1 : l4 === 'udp' ? 2 : 0) << 5);
  let shape = SHAPES.get(sig);
  if (!shape) SHAPES.set(sig, shape = { src, dst, proto, sport, dport, l4, sig, key: keyLayout({ src, dst, proto, sport, dport }) });
  return shape;
}

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
  const src = s.src ? (r.ip.src as Addr4Match).addr : 0, dst = s.dst ? (r.ip.dst as Addr4Match).addr : 0;
  const proto = s.proto && !s.l4 ? r.ip.proto!.num : 0;
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
  // each rule's shape, computed once (a rule that ends one run's scan starts the next)
  const shapes = new Array<Shape | null | undefined>(hi - lo);
  const shapeAt = (k: number): Shape | null => (shapes[k - lo] ??= computeShape(chain.rules[k]!) ?? null);
  let i = lo;
  while (i < hi) {
    const s = shapeAt(i);
    if (!s) { i++; continue; }
    const proto = chain.rules[i]!.ip.proto?.num;
    // the first rule (its index) of each key so far: a run with jumps ends before a key comes again (see above)
    const keys = new Map<string | number, number>();
    let jumps = false;
    let j = i;
    while (j < hi) {
      const r = chain.rules[j]!;
      // a tcp or udp run is of one protocol; other runs may mix them (the key holds it)
      if (shapeAt(j) !== s || (s.l4 && r.ip.proto!.num !== proto)) break;
      const key = keyId(r, s, true);
      const jump = r.verdict.kind === 'jump';
      if (keys.has(key)) { if (jumps || jump) break; } else keys.set(key, j);
      jumps ||= jump;
      j++;
    }
    if (j - i >= MIN_EXACT_RUN) {
      const targets: string[] = [];
      for (let k = i; k < j; k++) { const v = chain.rules[k]!.verdict; if (v.kind === 'jump' && !targets.includes(v.chain)) targets.push(v.chain); }
      const run: ExactRun = { from: i, to: j, shape: s, map: `ex_${chainIdx}_${i}`, ipMap: s.l4 ? `exip_${chainIdx}_${i}` : undefined, targets, kind: 'hash' };
      firstRules.set(run, keys);
      if (keyBits(s, true) <= 64) {
        if (keys.size <= treeMax) run.kind = 'tree';
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

/** Write the key of rule `r` (fields outside the shape zero; without ports when not `withPorts`) at `at`. */
function writeKey(out: Buffer, at: number, r: Rule, s: Shape, withPorts: boolean): void {
  const k = s.key;
  if (s.src) out.writeUInt32LE((r.ip.src as Addr4Match).addr, at + k.src);
  if (s.dst) out.writeUInt32LE((r.ip.dst as Addr4Match).addr, at + k.dst);
  if (s.proto) out[at + k.proto] = r.ip.proto!.num;
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
export const isTailRun = (chain: Chain, run: ExactRun): boolean => run.kind !== 'tree' && run.to === chain.rules.length;

/** The maps for appended keys of a compact run (a hash run takes them into its own maps). */
const deltaNames = (run: ExactRun): { map: string; ipMap?: string; flag: string } => ({
  map: run.map.replace(/^ex_/, 'exd_'), ipMap: run.ipMap?.replace(/^exip_/, 'exdip_'), flag: run.map.replace(/^ex_/, 'exf_'),
});

export function tailRun(chain: Chain, run: ExactRun): TailRun {
  const r0 = chain.rules[run.from]!;
  const common = { chain: chain.name, sig: run.shape.sig, proto: run.shape.l4 ? r0.ip.proto!.num : undefined, targets: run.targets, jumps: run.targets.length > 0 };
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
  if (!s || s.sig !== tail.sig || (s.l4 && r.ip.proto!.num !== tail.proto)) return undefined;
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
  const table = (rules: Map<string | number, number>, withPorts: boolean, valued: boolean): CompactTable | undefined => {
    const fields = valueFields(run.shape, withPorts);
    const his = new Uint32Array(rules.size), los = new Uint32Array(rules.size);
    let i = 0;
    for (const k of rules.values()) { const [hi, lo] = splitValue(chain.rules[k]!, fields); his[i] = hi; los[i++] = lo; }
    return buildCompact(his, los, keyBits(run.shape, withPorts) > 32, valued);
  };
  const full = table(first, true, true);
  if (!full) return undefined;
  if (!run.ipMap) return { full };
  const part = table(ipPart, false, false);
  return part && { full, part };
}

/** Each run's first rule (its index in the chain) of each key, as findExactRuns found them (a 100k-rule run is not walked again). */
const firstRules = new WeakMap<ExactRun, Map<string | number, number>>();

/**
 * The first rule of each key (it matches first), and for tcp/udp runs one
 * rule of each address/protocol part, by their indices in the chain.
 */
function firstByKey(chain: Chain, run: ExactRun): { first: Map<string | number, number>; ipPart: Map<string | number, number> } {
  let first = firstRules.get(run);
  if (!first) {
    first = new Map();
    for (let i = run.from; i < run.to; i++) { const id = keyId(chain.rules[i]!, run.shape, true); if (!first.has(id)) first.set(id, i); }
    firstRules.set(run, first);
  }
  const ipPart = new Map<string | number, number>();
  if (run.ipMap) {
    for (let i = run.from; i < run.to; i++) { const ipId = keyId(chain.rules[i]!, run.shape, false); if (!ipPart.has(ipId)) ipPart.set(ipId, i); }
  }
  return { first, ipPart };
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
  const keys = Buffer.alloc(size * first.size);
  const values = Buffer.alloc(8 * first.size);
  let n = 0;
  for (const i of first.values()) {
    const r = chain.rules[i]!;
    writeKey(keys, n * size, r, run.shape, true);
    values.writeUInt32LE(slotAt(i), n * 8);
    const v = r.verdict;
    values.writeUInt32LE(v.kind === 'jump' ? JUMP_BASE + run.targets.indexOf(v.chain) : v.kind === 'accept' ? NF_ACCEPT : NF_DROP, n * 8 + 4);
    n++;
  }
  const maps: MapSpecOut[] = [{ name: run.map, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 8, maxEntries: first.size + room, flags: 0, keys, values, count: first.size }];
  if (run.ipMap) {
    const ipKeys = Buffer.alloc(size * ipPart.size);
    let k = 0;
    for (const i of ipPart.values()) writeKey(ipKeys, size * k++, chain.rules[i]!, run.shape, false);
    maps.push({ name: run.ipMap, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 1, maxEntries: ipPart.size + room, flags: 0, keys: ipKeys, values: Buffer.alloc(ipPart.size, 1), count: ipPart.size });
  }
  return maps;
}

/** A single-element array map holding `bytes`. */
const arrayOf = (name: string, bytes: Buffer): MapSpecOut =>
  ({ name, type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: bytes.length, maxEntries: 1, flags: 0, keys: Buffer.alloc(4), values: bytes, count: 1 });

/**
 * A compact run's maps: its tables, each rule's value written at its key's
 * entry; with `room`, empty hash maps for appended keys and their flag.
 */
function compactMaps(chain: Chain, run: ExactRun, first: Map<string | number, number>, slotAt: (ruleIndex: number) => number, room: number): MapSpecOut[] {
  const { full, part } = run.compact!;
  const bytes = Buffer.from(full.bytes);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  let i = 0;
  for (const k of first.values()) {
    const w = valueWord(full.layout, full.position[i++]!);
    words[w] = slotAt(k);
    const v = chain.rules[k]!.verdict;
    words[w + 1] = v.kind === 'jump' ? JUMP_BASE + run.targets.indexOf(v.chain) : v.kind === 'accept' ? NF_ACCEPT : NF_DROP;
  }
  const maps = [arrayOf(run.map, bytes)];
  if (part) maps.push(arrayOf(run.ipMap!, part.bytes));
  if (room > 0) {
    const d = deltaNames(run), size = run.shape.key.size, none = Buffer.alloc(0);
    maps.push({ name: d.map, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 8, maxEntries: room, flags: 0, keys: none, values: none, count: 0 });
    if (d.ipMap) maps.push({ name: d.ipMap, type: BPF_MAP_TYPE_HASH, keySize: size, valueSize: 1, maxEntries: room, flags: 0, keys: none, values: none, count: 0 });
    maps.push(arrayOf(d.flag, Buffer.alloc(4)));
  }
  return maps;
}

/** The fields of a shape's search value, most significant first, with their summary offset, load size and width. */
function valueFields(s: Shape, withPorts: boolean): { at: number; size: 1 | 2 | 4; bits: number; of: (r: Rule) => number }[] {
  const out: { at: number; size: 1 | 2 | 4; bits: number; of: (r: Rule) => number }[] = [];
  if (s.src) out.push({ at: S.SADDR, size: 4, bits: 32, of: (r) => (r.ip.src as Addr4Match).addr });
  if (s.dst) out.push({ at: S.DADDR, size: 4, bits: 32, of: (r) => (r.ip.dst as Addr4Match).addr });
  if (withPorts && s.sport) out.push({ at: S.SPORT, size: 2, bits: 16, of: (r) => ports(r, s)[0] });
  if (withPorts && s.dport) out.push({ at: S.DPORT, size: 2, bits: 16, of: (r) => ports(r, s)[1] });
  if (s.proto) out.push({ at: S.PROTO, size: 1, bits: 8, of: (r) => r.ip.proto!.num });
  return out;
}

const keyBits = (s: Shape, withPorts: boolean): number => valueFields(s, withPorts).reduce((n, f) => n + f.bits, 0);

/**
 * A rule's search value as its high and low 32 bits (as valueOf, without
 * BigInt: the compact tables of 100k keys are built with it).
 */
function splitValue(r: Rule, fields: ReturnType<typeof valueFields>): [number, number] {
  let hi = 0, lo = 0;
  for (const f of fields) {
    const x = f.of(r) >>> 0;
    if (f.bits === 32) { hi = lo; lo = x; } else { hi = ((hi << f.bits) | (lo >>> (32 - f.bits))) >>> 0; lo = ((lo << f.bits) | x) >>> 0; }
  }
  return [hi, lo];
}

/** A rule's search value: its fields side by side in one unsigned 64-bit number. */
function valueOf(r: Rule, fields: ReturnType<typeof valueFields>): bigint {
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
  const sorted = (indices: Iterable<number>, withPorts: boolean): { v: bigint; r: Rule; k: number }[] =>
    [...indices].map((k) => ({ v: valueOf(chain.rules[k]!, withPorts ? full : part), r: chain.rules[k]!, k })).sort((x, y) => (x.v < y.v ? -1 : x.v > y.v ? 1 : 0));
  const short = a.fresh('xtshort');
  if (s.l4) {
    a.ldx(2, R1, R9, S.FRAGOFF);
    if (s.l4 === 'tcp') a.jmp32('jeq', R1, 1, short);
    a.jmp32('jne', R1, 0, skip);
    a.ldx(4, R1, R9, S.L4AVAIL).jmp32('jlt', R1, s.l4 === 'tcp' ? 20 : 8, short);
  }
  const keys = sorted(first.values(), true);
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
  const parts = sorted(ipPart.values(), false);
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
