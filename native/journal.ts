/**
 * A generation's journal of appended rules (pinned as g<N>_journal beside
 * its frozen ruleset, native/tablestate.ts): `iptables -A` of a rule that
 * only extends a chain's last exact-match run adds its key to that run's map
 * and records the rule here, instead of recompiling and storing the whole
 * table (compat/fast-append.ts). Readers put the recorded rules back at the
 * ends of their chains (compat/engine.ts readTable); the next full
 * replacement starts a new generation with an empty journal.
 *
 * A hash map of u32 keys to values of JOURNAL_VALUE bytes (allocated as used):
 *   1        the position: u32 entries, u32 next free counter slot
 *   2 + i    entry i: a rule and its chain and counter slot, as JSON
 *   2^31 + k chunk k of the header: what appending needs (the tail runs, the
 *            counter slots), as JSON (its length first), written once
 * An append writes entry `count`, changes the run's maps, then the
 * position. The map change is what the kernel enforces, so it is the commit:
 * an entry at `count` whose key the run's map gives its slot is in force
 * though the position was not moved yet (a writer killed in between), and
 * readers take it as appended (compat/engine.ts); any other entry at or past
 * `count` is debris that the next append overwrites.
 */
import type { TailRun } from '../cgen/exact';
import type { Rule } from '../xlate/ir';
import { close, mapCreate, mapLookup, MapType, mapUpdate, u32Key } from './bpf';

/** The journal's layout and its header's TailRun form: 2 since compact runs (cgen/compact.ts) keep their appended keys apart. */
export const JOURNAL_VERSION = 2 as const;

export interface JournalHeader {
  version: typeof JOURNAL_VERSION;
  /** slots of the generation's counter map (16 bytes each) */
  counterSlots: number;
  tails: TailRun[];
}
export interface JournalEntry { chain: string; rule: Rule; slot: number }
export interface Journal {
  header: JournalHeader; count: number; nextSlot: number; entries: JournalEntry[];
  /** entry `count`, when there is one: written by an append not committed yet, or debris (see above) */
  pending?: JournalEntry;
}

/** The size of a record: an entry's JSON must fit (a longer rule takes the full path). */
export const JOURNAL_VALUE = 1024;
const POSITION = 1, FIRST = 2, HEADER = 0x80000000;

function record(json: string): Buffer | undefined {
  const b = Buffer.from(json);
  if (b.length + 4 > JOURNAL_VALUE) return undefined;
  const v = Buffer.alloc(JOURNAL_VALUE);
  v.writeUInt32LE(b.length, 0);
  b.copy(v, 4);
  return v;
}

function readRecord(fd: number, key: number): string | undefined {
  const v = Buffer.alloc(JOURNAL_VALUE);
  if (!mapLookup(fd, u32Key(key), v)) return undefined;
  return v.toString('utf8', 4, 4 + v.readUInt32LE(0));
}

/** The header's JSON (its length first) in records of JOURNAL_VALUE bytes. */
function headerChunks(header: JournalHeader): Buffer[] {
  const json = Buffer.from(JSON.stringify(header));
  const whole = Buffer.alloc(Math.ceil((json.length + 4) / JOURNAL_VALUE) * JOURNAL_VALUE);
  whole.writeUInt32LE(json.length, 0);
  json.copy(whole, 4);
  return Array.from({ length: whole.length / JOURNAL_VALUE }, (_, k) => whole.subarray(k * JOURNAL_VALUE, (k + 1) * JOURNAL_VALUE));
}

function readHeader(fd: number): JournalHeader | undefined {
  const first = Buffer.alloc(JOURNAL_VALUE);
  if (!mapLookup(fd, u32Key(HEADER), first)) return undefined;
  const len = first.readUInt32LE(0);
  const whole = Buffer.alloc(Math.ceil((len + 4) / JOURNAL_VALUE) * JOURNAL_VALUE);
  first.copy(whole);
  for (let k = 1; k * JOURNAL_VALUE < whole.length; k++) {
    if (!mapLookup(fd, u32Key(HEADER + k), whole.subarray(k * JOURNAL_VALUE, (k + 1) * JOURNAL_VALUE))) return undefined;
  }
  return JSON.parse(whole.toString('utf8', 4, 4 + len)) as JournalHeader;
}

/** A new journal for `entries` appended rules, whose first counter slot is `firstSlot`. */
export function createJournal(header: JournalHeader, firstSlot: number, entries: number): number {
  const chunks = headerChunks(header);
  const fd = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: JOURNAL_VALUE, maxEntries: FIRST + entries + chunks.length, flags: 1 /* BPF_F_NO_PREALLOC */, name: 'bpft_journal' });
  try {
    chunks.forEach((c, k) => mapUpdate(fd, u32Key(HEADER + k), c));
    mapUpdate(fd, u32Key(POSITION), position(0, firstSlot));
    return fd;
  } catch (e) { close(fd); throw e; }
}

function position(count: number, nextSlot: number): Buffer {
  const v = Buffer.alloc(JOURNAL_VALUE);
  v.writeUInt32LE(count, 0);
  v.writeUInt32LE(nextSlot, 4);
  return v;
}

/** The journal's header and position, and with `withEntries` its entries. */
export function readJournal(fd: number, withEntries: boolean): Journal | undefined {
  const header = readHeader(fd);
  const p = Buffer.alloc(JOURNAL_VALUE);
  if (header === undefined || !mapLookup(fd, u32Key(POSITION), p)) return undefined;
  const count = p.readUInt32LE(0), nextSlot = p.readUInt32LE(4);
  const entries: JournalEntry[] = [];
  for (let i = 0; withEntries && i < count; i++) {
    const e = readRecord(fd, FIRST + i);
    if (e === undefined) throw new Error(`journal entry ${i} of ${count} is missing`);
    entries.push(JSON.parse(e) as JournalEntry);
  }
  const pending = readRecord(fd, FIRST + count);
  return { header, count, nextSlot, entries, pending: pending === undefined ? undefined : JSON.parse(pending) as JournalEntry };
}

/** Write entry `j.count` (not yet visible); false when it does not fit. */
export function writeEntry(fd: number, j: Journal, e: JournalEntry): boolean {
  const v = record(JSON.stringify(e));
  if (!v) return false;
  mapUpdate(fd, u32Key(FIRST + j.count), v);
  return true;
}

/** Make the entry written last visible, with the counter slot it took. */
export function commitEntry(fd: number, j: Journal): void {
  mapUpdate(fd, u32Key(POSITION), position(j.count + 1, j.nextSlot + 1));
}
