/**
 * The live kernel objects of one table family in one network namespace,
 * pinned in its state directory, and the atomic replacement protocol:
 *
 *   map_gen          array, one u32: the active generation (0 or 1)
 *   map_progs        program array: slot gen*4 + hook slot → hook program
 *   link_<CHAIN>     netfilter link of the hook's dispatcher (cgen/dispatcher.ts)
 *   g<N>_counters    generation N's counter map
 *   g<N>_state       generation N's ruleset (IR as JSON), frozen
 *   g<N>_rstate      generation N's state of limit and nth matches (when it has any)
 *   g<N>_journal     generation N's rules appended since (native/journal.ts)
 *   g<N>_t_<MAP>     the maps of generation N's runs that take appended rules
 * (bpffs reserves names with dots.)
 *
 * A replacement loads everything for the inactive generation first, then
 * flips map_gen (one word: all hooks switch together), then drops the old
 * generation (its program slots get the new programs). Nothing the kernel
 * sees changes before the flip.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Linked, patchMaps } from '../cgen/asm';
import { programBtf } from '../cgen/btfgen';
import { GEN_MAP, HOOK_SLOTS, PROGS_MAP } from '../cgen/dispatcher';
import {
  close, mapCreate, mapDelete, mapFreeze, mapLookup, mapUpdate, mapUpdateBatch, MapType, objGet, objPin,
  ATTACH_NETFILTER, btfLoad, PROG_TYPE_NETFILTER, progLoad, u32Key,
} from './bpf';
import { crashPoint } from './crash';
import { familyDir, stateSubdir } from './statefs';
import { type Journal, readJournal } from './journal';
import { activeGen, attachFirstFree, generationMaps, pinned, readPinnedValue, unpin } from './generations';

export const NF_IP_PRI_FILTER = 0;
/**
 * Priorities tried in turn when attaching a hook: iptables' filter priority
 * first. The kernel refuses a BPF hook at a priority another hook of the same
 * hook point already has (EBUSY), e.g. when iptables-legacy, iptables-nft or
 * an nft filter chain sits at 0 there; the nearest free one keeps the filter
 * between mangle (-150) and security (50).
 */
export const HOOK_PRIORITIES = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9, 10, -10];

const STATE_CHUNK = 1 << 16;

export interface HookSpec { chain: string; hooknum: number; slot: number }

export interface NewGeneration {
  /** loaded hook programs by hook slot */
  progFds: Map<number, number>;
  countersFd: number;
  stateFd: number;
  /** the state of its limit and nth matches (cgen STATE_MAP), if any */
  ruleStateFd?: number;
  /** its journal of appended rules, and the maps of the runs they extend, by map name */
  journalFd?: number;
  runMapFds?: Map<string, number>;
}

/** The pins of generation `gen` besides its fixed kinds (journal, run maps): what an install replaces or retires. */
function extraPins(dir: string, gen: 0 | 1): string[] {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  return names.filter((n) => n === `g${gen}_journal` || n.startsWith(`g${gen}_t_`));
}


/** Store bytes in a new frozen array map of 64 KiB chunks; the first 4 bytes of chunk 0 hold the length. */
export function createStateMap(data: Buffer | readonly Buffer[], name: string): number {
  const parts = Buffer.isBuffer(data) ? [data] : data;
  let length = 0;
  for (const p of parts) length += p.length;
  const chunks = Math.max(1, Math.ceil((length + 4) / STATE_CHUNK));
  const fd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: STATE_CHUNK, maxEntries: chunks, name, flags: 0 });
  try {
    // the parts copied once, into the chunks' values back to back, which one batch update writes
    const whole = Buffer.allocUnsafe(chunks * STATE_CHUNK);
    whole.writeUInt32LE(length, 0);
    let at = 4;
    for (const p of parts) at += p.copy(whole, at);
    whole.fill(0, at);
    const keys = Buffer.alloc(4 * chunks);
    for (let i = 0; i < chunks; i++) keys.writeUInt32LE(i, 4 * i);
    mapUpdateBatch(fd, keys, whole, chunks);
    mapFreeze(fd);
    return fd;
  } catch (e) { close(fd); throw e; }
}

export function readStateMap(fd: number): Buffer {
  const first = Buffer.alloc(STATE_CHUNK);
  if (!mapLookup(fd, u32Key(0), first)) return Buffer.alloc(0);
  const len = first.readUInt32LE(0);
  const chunks = Math.ceil((len + 4) / STATE_CHUNK);
  if (chunks <= 1) return first.subarray(4, 4 + len);
  // the chunks read straight into one buffer: the data is a view of it, not a copy
  const whole = Buffer.allocUnsafe(chunks * STATE_CHUNK);
  first.copy(whole, 0);
  for (let i = 1; i < chunks; i++) mapLookup(fd, u32Key(i), whole.subarray(i * STATE_CHUNK, (i + 1) * STATE_CHUNK));
  return whole.subarray(4, 4 + len);
}

/** Create and fill the maps a compiled table needs besides its counters; returns name → fd. */
export function createMaps(specs: readonly { name: string; type: number; keySize: number; valueSize: number; maxEntries: number; flags: number; keys: Buffer; values: Buffer; count: number }[]): Map<string, number> {
  const fds = new Map<string, number>();
  try {
    for (const m of specs) {
      const fd = mapCreate({ type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: Math.max(1, m.maxEntries), flags: m.flags, name: m.name });
      fds.set(m.name, fd);
      mapUpdateBatch(fd, m.keys, m.values, m.count);
    }
    return fds;
  } catch (e) {
    for (const fd of fds.values()) close(fd);
    throw e;
  }
}

/**
 * Who may hold the namespace's conntrack references: each iptables
 * family's table (its own family's), and the nft ruleset (the families of
 * its tables with a ct expression).
 */
export type ConntrackOwner = 4 | 6 | 'nft';
export const CONNTRACK_OWNERS: readonly ConntrackOwner[] = [4, 6, 'nft'];

const join = (dir: string | undefined, name: string): string | undefined => (dir ? path.join(dir, name) : undefined);
const markerPinned = (p: string | undefined): boolean => {
  if (!p) return false;
  const fd = objGet(p);
  if (fd >= 0) { close(fd); return true; }
  return false;
};

/**
 * A marker (a tiny pinned map in the owner's directory) recording that
 * `owner` holds the namespace's conntrack reference for `family`, so
 * restores that need none skip the netlink round trip unless there is one
 * to drop, and one owner never drops a reference another still needs. The
 * nft ruleset's single marker of earlier releases (an inet reference, both
 * families) counts for either family until it is cleared.
 */
export function conntrackMarker(owner: ConntrackOwner, family: 4 | 6): { held(): boolean; set(): void; clear(): void } {
  const where = (create: boolean): string | undefined => {
    if (owner !== 'nft') return owner === family ? join(familyDir(owner, create), 'conntrack_ref') : undefined;
    return join(stateSubdir('nft', create), `conntrack_ref${family}`);
  };
  const legacy = (): string | undefined => (owner === 'nft' ? join(stateSubdir('nft', false), 'conntrack_ref') : undefined);
  const held = (): boolean => markerPinned(where(false)) || markerPinned(legacy());
  return {
    held,
    set(): void {
      const p = where(true);
      if (!p) throw new Error(`internal: iptables' IPv${owner} table holds no IPv${family} conntrack reference`);
      if (markerPinned(p)) return;
      const fd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1, name: 'bpft_ct_ref' });
      try { objPin(fd, p); } finally { close(fd); }
    },
    clear(): void {
      for (const p of [where(false), legacy()]) if (p) unpin(path.dirname(p), path.basename(p));
    },
  };
}

export class TableState {
  private constructor(readonly dir: string) {}

  /** The state of `family` in this namespace; undefined when nothing is loaded and !create. */
  static open(family: 4 | 6, create: boolean): TableState | undefined {
    const dir = familyDir(family, create);
    return dir ? new TableState(dir) : undefined;
  }

  /** Active generation, or undefined when no ruleset was ever installed. */
  activeGen(): 0 | 1 | undefined { return activeGen(this.dir); }

  /** The active generation's limit and nth state (its STATE_MAP value), or undefined. */
  readActiveRuleState(): Buffer | undefined {
    const gen = this.activeGen();
    return gen === undefined ? undefined : readPinnedValue(this.dir, `g${gen}_rstate`);
  }

  /**
   * The serialized ruleset of the active generation, or undefined. A writer
   * may flip the generation and unpin the old one between our reading the
   * generation and opening its pins: then the new one is read.
   */
  readActive(): { gen: 0 | 1; state: Buffer; countersFd: number; journal?: Journal } | undefined {
    for (let attempt = 0; ; attempt++) {
      const gen = this.activeGen();
      if (gen === undefined) return undefined;
      const sfd = pinned(this.dir, `g${gen}_state`);
      const cfd = pinned(this.dir, `g${gen}_counters`);
      if (sfd !== undefined && cfd !== undefined) {
        const jfd = pinned(this.dir, `g${gen}_journal`);
        try {
          return { gen, state: readStateMap(sfd), countersFd: cfd, journal: jfd === undefined ? undefined : readJournal(jfd, true) };
        } finally { close(sfd); if (jfd !== undefined) close(jfd); }
      }
      if (sfd !== undefined) close(sfd);
      if (cfd !== undefined) close(cfd);
      // the generation moved on (or an install was cut short before its first flip): look again
      if (attempt >= 20 || this.activeGen() === gen) return undefined;
    }
  }

  /**
   * The active generation's journal (open, with its header and position) and
   * the pinned map of each of its tail runs by name, for appending; undefined
   * when it has none. The caller closes the fds.
   */
  openJournal(): { journalFd: number; journal: Journal; countersFd: number; runMap: (name: string) => number | undefined } | undefined {
    const gen = this.activeGen();
    if (gen === undefined) return undefined;
    const jfd = pinned(this.dir, `g${gen}_journal`);
    if (jfd === undefined) return undefined;
    const journal = readJournal(jfd, false);
    const cfd = journal && pinned(this.dir, `g${gen}_counters`);
    if (!journal || cfd === undefined) { close(jfd); return undefined; }
    return { journalFd: jfd, journal, countersFd: cfd, runMap: (name) => this.runMap(gen, name) };
  }

  /** Generation `gen`'s pinned map of the tail run `name` (open), or undefined. */
  runMap(gen: 0 | 1, name: string): number | undefined { return pinned(this.dir, `g${gen}_t_${name}`); }

  /**
   * Load a hook program (with the BTF of its global functions). `maps` gives
   * the fd of each map it names; a number alone is the counters map.
   */
  static loadHook(linked: Linked, maps: number | ReadonlyMap<string, number>, name: string): number {
    const b = programBtf(linked);
    const btfFd = btfLoad(b.btf);
    const fds = typeof maps === 'number' ? new Map([['counters', maps]]) : maps;
    try {
      return progLoad({
        type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER,
        insns: patchMaps(linked, fds), name,
        btf: { fd: btfFd, funcInfo: b.funcInfo, count: b.funcInfoCount },
      });
    } finally { close(btfFd); }
  }

  /**
   * Install a loaded generation and make it active atomically; create the
   * dispatchers and links on first use. Takes ownership of the fds in `g`.
   */
  /**
   * Returns the hooks attached now at a priority other than iptables' 0
   * (because something else holds 0 there), by chain.
   */
  install(g: NewGeneration, hooks: HookSpec[], dispatchers: Map<number, Linked>, pf: number): Map<string, number> {
    const attachedAt = new Map<string, number>();
    const fds: number[] = [];
    const own = (fd: number): number => { fds.push(fd); return fd; };
    try {
      // first install in this namespace (or debris of an interrupted one): start clean
      const { genFd, progsFd, old, next } = generationMaps(this.dir, HOOK_SLOTS, 'bpft', () => hooks.map((h) => `link_${h.chain}`));
      own(genFd); own(progsFd);

      for (const [slot, fd] of g.progFds) { mapUpdate(progsFd, u32Key(next * HOOK_SLOTS + slot), u32Key(fd)); crashPoint('install: program in its slot'); }
      for (const kind of ['counters', 'state', 'rstate'] as const) {
        unpin(this.dir, `g${next}_${kind}`);
        crashPoint(`install: g${next}_${kind} unpinned`);
        const fd = kind === 'counters' ? g.countersFd : kind === 'state' ? g.stateFd : g.ruleStateFd;
        if (fd !== undefined) { objPin(fd, path.join(this.dir, `g${next}_${kind}`)); crashPoint(`install: g${next}_${kind} pinned`); }
      }
      for (const name of extraPins(this.dir, next)) unpin(this.dir, name);
      if (g.journalFd !== undefined) {
        for (const [name, fd] of g.runMapFds ?? []) objPin(fd, path.join(this.dir, `g${next}_t_${name}`));
        objPin(g.journalFd, path.join(this.dir, `g${next}_journal`));
        crashPoint(`install: g${next}_journal pinned`);
      }
      // the flip
      crashPoint('install: before the flip');
      mapUpdate(genFd, u32Key(0), u32Key(next));
      crashPoint('install: after the flip');

      for (const h of hooks) {
        const existing = pinned(this.dir, `link_${h.chain}`);
        if (existing !== undefined) { close(existing); continue; }
        const linked = dispatchers.get(h.slot)!;
        const dfd = own(progLoad({
          type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER,
          insns: patchMaps(linked, new Map([[GEN_MAP, genFd], [PROGS_MAP, progsFd]])), name: `bpft_${h.chain}`,
        }));
        const link = attachFirstFree(dfd, pf, h.hooknum, HOOK_PRIORITIES, h.chain);
        own(link.fd);
        if (link.priority !== NF_IP_PRI_FILTER) attachedAt.set(h.chain, link.priority);
        objPin(link.fd, path.join(this.dir, `link_${h.chain}`));
        crashPoint(`install: link_${h.chain} pinned`);
      }
      // retire the old generation: its slots take the new programs (a packet that read the generation just
      // before the flip runs the new ruleset; an update is fast where a delete waits for the kernel to
      // unpatch the dispatchers' direct jumps, about 15 ms a slot)
      for (const h of hooks) {
        const fd = g.progFds.get(h.slot);
        if (fd !== undefined) mapUpdate(progsFd, u32Key(old * HOOK_SLOTS + h.slot), u32Key(fd)); else mapDelete(progsFd, u32Key(old * HOOK_SLOTS + h.slot));
        crashPoint('install: old program retired');
      }
      for (const kind of ['counters', 'state', 'rstate']) { unpin(this.dir, `g${old}_${kind}`); crashPoint(`install: g${old}_${kind} unpinned`); }
      for (const name of extraPins(this.dir, old)) unpin(this.dir, name);
      return attachedAt;
    } finally {
      for (const fd of fds) close(fd);
      for (const fd of g.progFds.values()) close(fd);
      close(g.countersFd);
      close(g.stateFd);
      if (g.ruleStateFd !== undefined) close(g.ruleStateFd);
      if (g.journalFd !== undefined) close(g.journalFd);
      for (const fd of g.runMapFds?.values() ?? []) close(fd);
    }
  }
}
