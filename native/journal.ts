/**
 * A generation's journal of appended rules (pinned as g<N>_journal beside
 * its frozen ruleset, native/tablestate.ts): `iptables -A` of a rule that
 * only extends a chain's last exact-match run adds its key to that run's map
 * and records the rule here, instead of recompiling and storing the whole
 * table (compat/fast-append.ts). Readers put the recorded rules back at the
 * ends of their chains (compat/engine.ts readTable); the next full
 * replacement starts a new generation with an empty journal.
 *
 * A hash map of u32 keys to fixed-size values (allocated as used):
 *   0        the header: what appending needs (the tail runs, the counter
 *            slots), as JSON, written once
 *   1        the position: u32 entries, u32 next free counter slot
 *   2 + i    entry i: a rule and its chain and counter slot, as JSON
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

export interface JournalHeader {
  version: 1;
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

/** The largest JSON of a header or an entry. */
export const JOURNAL_VALUE = 8192;
const HEADER = 0, POSITION = 1, FIRST = 2;

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

/** A new journal for `entries` appended rules, whose first counter slot is `firstSlot`; undefined when the header does not fit. */
export function createJournal(header: JournalHeader, firstSlot: number, entries: number): number | undefined {
  const h = record(JSON.stringify(header));
  if (!h) return undefined;
  const fd = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: JOURNAL_VALUE, maxEntries: FIRST + entries, flags: 1 /* BPF_F_NO_PREALLOC */, name: 'bpft_journal' });
  try {
    mapUpdate(fd, u32Key(HEADER), h);
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
  const h = readRecord(fd, HEADER);
  const p = Buffer.alloc(JOURNAL_VALUE);
  if (h === undefined || !mapLookup(fd, u32Key(POSITION), p)) return undefined;
  const count = p.readUInt32LE(0), nextSlot = p.readUInt32LE(4);
  const entries: JournalEntry[] = [];
  for (let i = 0; withEntries && i < count; i++) {
    const e = readRecord(fd, FIRST + i);
    if (e === undefined) throw new Error(`journal entry ${i} of ${count} is missing`);
    entries.push(JSON.parse(e) as JournalEntry);
  }
  const pending = readRecord(fd, FIRST + count);
  return { header: JSON.parse(h) as JournalHeader, count, nextSlot, entries, pending: pending === undefined ? undefined : JSON.parse(pending) as JournalEntry };
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
