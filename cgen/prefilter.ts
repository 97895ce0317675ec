/**
 * Prefilters: a run of consecutive rules that all require the source (or all
 * the destination) address to lie in a prefix is guarded by one LPM-trie
 * lookup of the packet's address in the union of those prefixes. A packet
 * outside all of them skips the whole run at the cost of one lookup; a packet
 * inside runs the rules in order as before, so first-match order and per-rule
 * counters are unchanged. Pure: produces map specs and code.
 */
import { type Asm, Helper, R0, R1, R2, R10, R9 } from './asm';
import { S } from './summary';
import { maskBits } from '../xlate/save';
import { type Chain, isAddr6, type Rule } from '../xlate/ir';

/** Shortest run worth a lookup (a lookup costs about as much as a handful of rule checks). */
export const MIN_RUN = 8;
export const LPM_TRIE = 11;
export const BPF_F_NO_PREALLOC = 1;

export interface MapSpecOut {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** the initial elements: `count` keys of keySize bytes and their values of valueSize bytes, back to back (one batch update) */
  keys: Buffer;
  values: Buffer;
  count: number;
}

/** Elements given as [key, value] pairs, packed as MapSpecOut holds them. */
export function packEntries(entries: readonly (readonly [Buffer, Buffer])[]): { keys: Buffer; values: Buffer; count: number } {
  return { keys: Buffer.concat(entries.map(([k]) => k)), values: Buffer.concat(entries.map(([, v]) => v)), count: entries.length };
}
/** No initial elements. */
export const NO_ENTRIES = (): { keys: Buffer; values: Buffer; count: number } => ({ keys: Buffer.alloc(0), values: Buffer.alloc(0), count: 0 });

type Field = 'src' | 'dst';

function prefixOf(r: Rule, f: Field): { bits: number; addr: number } | undefined {
  const a = r.ip[f];
  if (!a || a.invert || isAddr6(a)) return undefined;
  const bits = maskBits(a.mask);
  return bits === undefined || bits === 0 ? undefined : { bits, addr: a.addr };
}

export interface Run { from: number; to: number; field: Field; map: string }

/** Runs of rules [from, to) within rules [lo, hi) of a chain that share a prefix-constrained field. */
export function findRuns(chain: Chain, chainIdx: number, lo: number, hi: number): Run[] {
  const runs: Run[] = [];
  let i = lo;
  while (i < hi) {
    let best: Run | undefined;
    for (const field of ['src', 'dst'] as const) {
      let j = i;
      while (j < hi && prefixOf(chain.rules[j]!, field)) j++;
      if (j - i >= MIN_RUN && (!best || j > best.to)) best = { from: i, to: j, field, map: `pf_${chainIdx}_${i}` };
    }
    if (best) { runs.push(best); i = best.to; } else i++;
  }
  return runs;
}

export function runMap(chain: Chain, run: Run): MapSpecOut {
  const keys = new Map<string, Buffer>();
  for (let i = run.from; i < run.to; i++) {
    const p = prefixOf(chain.rules[i]!, run.field)!;
    const k = Buffer.alloc(8);
    k.writeUInt32LE(p.bits, 0);
    k.writeUInt32BE(p.addr, 4);
    keys.set(k.toString('hex'), k);
  }
  return {
    name: run.map, type: LPM_TRIE, keySize: 8, valueSize: 1, maxEntries: keys.size, flags: BPF_F_NO_PREALLOC,
    keys: Buffer.concat([...keys.values()]), values: Buffer.alloc(keys.size, 1), count: keys.size,
  };
}

/** Look the packet's address up; jump to `skip` when no prefix of the run contains it. `keyOff` is an 8-byte stack slot. */
export function emitRunGuard(a: Asm, run: Run, keyOff: number, skip: string): void {
  a.note(`prefilter: rules ${run.from + 1}-${run.to} need the ${run.field === 'src' ? 'source' : 'destination'} in one of their prefixes`);
  a.st(4, R10, keyOff, 32);
  a.ldx(4, R1, R9, run.field === 'src' ? S.SADDR : S.DADDR).toBe(R1, 32).stx(4, R10, keyOff + 4, R1);
  a.ldMapFd(R1, run.map);
  a.movReg(R2, R10).alu64('add', R2, { imm: keyOff });
  a.call(Helper.map_lookup_elem);
  a.jmp('jeq', R0, 0, skip);
}
