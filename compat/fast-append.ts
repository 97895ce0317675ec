/**
 * `iptables -A` without a recompile. When the chain's rules end in an
 * exact-match run (cgen/exact.ts: a blocklist of /32 sources, a service list
 * of address, protocol and port) and the new rule has that run's shape, the
 * rule only extends the run: its key goes into the run's hash map (unless an
 * earlier rule of the run has the key, which then keeps matching first; a
 * compact run, cgen/compact.ts, keeps its compiled keys in its table, read
 * here to tell, and its appended keys in hash maps of their own that the
 * program looks in once the run's flag is set), it
 * takes a free counter slot, and it is recorded in the generation's journal
 * (native/journal.ts). The programs do not change, nothing is recompiled, and
 * the stored ruleset is not read or written: the cost does not grow with the
 * table. Anything else (another shape, a jump to a chain the run does not
 * dispatch to, a duplicate key in a run with jumps, -c, the room used up)
 * takes the full path, which starts a new generation with an empty journal.
 *
 * Each change the kernel sees is one map update, so a packet meets the rules
 * before or after the append. Order: the entry written (unseen), a compact
 * run's flag (no verdict changes while its maps are empty), the
 * address-part map of a tcp/udp run, the run's map (the commit: now in force,
 * and readers list it, native/journal.ts), the journal's position.
 */
import { storedRule } from '../xlate/stored';
import { compactFind, type CompactLayout, tableBytes } from '../cgen/compact';
import { APPEND_ROOM, appendEntries, type TailRun } from '../cgen/exact';
import { close, mapDelete, mapInfo, mapLookup, mapUpdate, u32Key } from '../native/bpf';
import { crashPoint } from '../native/crash';
import { commitEntry, type Journal, JOURNAL_VERSION, writeEntry } from '../native/journal';
import { type Mapping, mmap, munmap, SysError } from '../native/libc';
import { TableState } from '../native/tablestate';
import type { TableCommand } from '../xlate/commands';
import type { Family, Rule } from '../xlate/ir';
import { log } from './log';

const BPF_NOEXIST = 1;
const E2BIG = 7;

/**
 * Entries kept free for appended rules (cgen/exact.ts APPEND_ROOM); tests
 * make it small through BPFTABLES_TEST_APPEND_ROOM to reach its end.
 */
export function appendRoom(): number {
  const test = process.env.BPFTABLES_TEST_APPEND_ROOM;
  return test !== undefined ? Number(test) : APPEND_ROOM;
}

/**
 * Is the journal's pending entry in force (its key gives its slot in the
 * run's map: an append killed after its commit, before it moved the
 * position; native/journal.ts)? Then it counts as appended.
 */
export function pendingInForce(j: Journal, runMap: (name: string) => number | undefined): boolean {
  const p = j.pending;
  const tail = p && p.slot === j.nextSlot ? j.header.tails.find((x) => x.chain === p.chain) : undefined;
  const e = tail && appendEntries(tail, p!.rule, p!.slot);
  if (!e) return false;
  const fd = runMap(tail!.map);
  if (fd === undefined) return false;
  try {
    const v = Buffer.alloc(8);
    return mapLookup(fd, e.key, v) && v.readUInt32LE(0) === p!.slot;
  } finally { close(fd); }
}

/** Append `cmd`'s rule in place if it can be; false when the full path must do it (nothing was changed then). */
export function tryFastAppend(family: Family, cmd: TableCommand): boolean {
  if (cmd.op !== 'append' || cmd.rules.length !== 1 || family !== 4) return false;
  const rule = cmd.rules[0]!;
  if (rule.counters.packets || rule.counters.bytes) return false; // -c: counters are written by the full path
  const open = TableState.open(family, false)?.openJournal();
  if (!open) return false;
  const fds: number[] = [open.journalFd, open.countersFd];
  try {
    let { journal } = open;
    if (journal.header.version !== JOURNAL_VERSION) return false; // a journal this version does not know
    const runMap = (name: string): number | undefined => {
      const fd = open.runMap(name);
      if (fd !== undefined) fds.push(fd);
      return fd;
    };
    if (pendingInForce(journal, open.runMap)) {
      // an append killed after its commit: make its entry count before this one takes the next place
      commitEntry(open.journalFd, journal);
      journal = { ...journal, count: journal.count + 1, nextSlot: journal.nextSlot + 1, pending: undefined };
    }
    const tail = journal.header.tails.find((x) => x.chain === cmd.chain);
    if (!tail || journal.count >= appendRoom() || journal.nextSlot >= journal.header.counterSlots) return false;
    const j = journal;
    const done = extendRun(tail, rule, j.nextSlot, runMap, () => writeEntry(open.journalFd, j, { chain: cmd.chain, rule: storedRule(rule), slot: j.nextSlot }));
    if (!done) return false;
    crashPoint('fast-append: run extended');
    commitEntry(open.journalFd, journal);
    crashPoint('fast-append: position moved');
    log.debug({ chain: cmd.chain, slot: journal.nextSlot, appended: journal.count + 1 }, 'rule appended in place');
    return true;
  } finally {
    for (const fd of fds) close(fd);
  }
}

/**
 * Does the compact table in array map `fd` hold key (hi, lo)? Read through
 * a mapping of the map, which touches the key's bucket only (a 100k-key
 * table is over a megabyte); a map that cannot be mapped (made without
 * BPF_F_MMAPABLE, by an earlier release) is read whole.
 */
function compactHas(fd: number, l: CompactLayout, hi: number, lo: number): boolean {
  const size = tableBytes(l);
  let m: Mapping | undefined;
  try { m = mmap(fd, size, false, 0); } catch (e) { if (!(e instanceof SysError)) throw e; }
  if (!m) {
    const t = Buffer.alloc(size);
    return mapLookup(fd, u32Key(0), t) && compactFind(l, t, hi, lo) >= 0;
  }
  try { return compactFind(l, Buffer.from(m.view, 0, size), hi, lo) >= 0; } finally { munmap(m); }
}

/**
 * Add the rule's keys to the run's maps after `record` wrote its journal
 * entry; false, with the maps as they were, when the rule cannot extend the run.
 */
function extendRun(tail: TailRun, rule: Rule, slot: number, mapFd: (name: string) => number | undefined, record: () => boolean): boolean {
  const e = appendEntries(tail, rule, slot);
  if (!e) return false;
  const main = mapFd(tail.map);
  const ip = tail.ipMap === undefined ? undefined : mapFd(tail.ipMap);
  if (main === undefined || (tail.ipMap !== undefined && ip === undefined)) return false;
  // a generation made by another version of bpftables may lay its keys out otherwise
  if (mapInfo(main).keySize !== e.key.length || (ip !== undefined && mapInfo(ip).keySize !== e.ipKey?.length)) return false;
  // a compact run's own tables hold the keys of the rules it was compiled from
  const b = tail.base;
  const baseFd = b && mapFd(b.map), baseIpFd = b?.ipMap === undefined ? undefined : mapFd(b.ipMap);
  const flagFd = b && mapFd(b.flag);
  if (b && (baseFd === undefined || flagFd === undefined || (b.ipMap !== undefined && baseIpFd === undefined))) return false;
  const inBase = (fd: number | undefined, l: CompactLayout | undefined, [hi, lo]: [number, number]): boolean =>
    fd !== undefined && l !== undefined && compactHas(fd, l, hi, lo);
  const taken = inBase(baseFd, b?.layout, e.full) || mapLookup(main, e.key, Buffer.alloc(8));
  // a run with jumps holds each key once: a second rule of that key must follow the first one's chain
  if (taken && (tail.jumps || e.jump)) return false;
  const ipNew = ip !== undefined && e.ipKey !== undefined && !inBase(baseIpFd, b?.ipLayout, e.part) && !mapLookup(ip, e.ipKey, Buffer.alloc(1));
  if (!record()) return false;
  crashPoint('fast-append: entry written');
  // the address part first: a kill before the commit then leaves at most an unlisted short-header drop (fails closed)
  try {
    // the program looks at the appended keys once the flag is set: set with none yet, it changes no verdict
    if (flagFd !== undefined && (ipNew || !taken)) mapUpdate(flagFd, u32Key(0), u32Key(1));
    if (ipNew) mapUpdate(ip!, e.ipKey!, Buffer.from([1]));
    crashPoint('fast-append: address part added');
    // the commit
    if (!taken) mapUpdate(main, e.key, e.value, BPF_NOEXIST);
  } catch (err) {
    if (ipNew) mapDelete(ip!, e.ipKey!);
    if (err instanceof SysError && err.errno === E2BIG) return false;
    throw err;
  }
  return true;
}
