/**
 * What the iptables tables (native/tablestate.ts) and the nft ruleset
 * (native/nftstate.ts) share of their two-generation protocol: pinned
 * objects in a state directory, the generation word and the program array
 * the dispatchers read, and attaching a dispatcher at the first free
 * priority of a list (the kernel gives each BPF hook a priority of its own).
 */
import fs from 'node:fs';
import path from 'node:path';
import { close, linkCreateNetfilter, mapCreate, mapInfo, mapLookup, MapType, mapUpdate, objGet, objPin, u32Key } from './bpf';
import { SysError } from './libc';

/** The pinned object `name` of `dir`, opened, or undefined when there is none. */
export function pinned(dir: string, name: string): number | undefined {
  const fd = objGet(path.join(dir, name));
  if (fd >= 0) return fd;
  if (fd === -2) return undefined;
  throw new SysError(`open ${path.join(dir, name)}`, -fd);
}

/** The one value of the pinned array map `name` (a generation's rule state), or undefined when there is none. */
export function readPinnedValue(dir: string, name: string): Buffer | undefined {
  const fd = pinned(dir, name);
  if (fd === undefined) return undefined;
  try {
    const v = Buffer.alloc(mapInfo(fd).valueSize);
    return mapLookup(fd, u32Key(0), v) ? v : undefined;
  } finally { close(fd); }
}

export function unpin(dir: string, name: string): void {
  fs.rmSync(path.join(dir, name), { force: true });
}

/** The active generation of `dir`, or undefined when nothing was ever installed there. */
export function activeGen(dir: string): 0 | 1 | undefined {
  const fd = pinned(dir, 'map_gen');
  if (fd === undefined) return undefined;
  try {
    const v = Buffer.alloc(4);
    mapLookup(fd, u32Key(0), v);
    return (v.readUInt32LE(0) & 1) as 0 | 1;
  } finally { close(fd); }
}

/**
 * The generation word and program array of `dir` (`slots` programs per
 * generation), made on first use (or over the debris of an interrupted
 * first install, whose `staleLinks` are unpinned first), with the active
 * generation and the next one. The caller closes both fds.
 */
export function generationMaps(dir: string, slots: number, name: string, staleLinks: () => string[]): { genFd: number; progsFd: number; old: 0 | 1; next: 0 | 1 } {
  let genFd = pinned(dir, 'map_gen');
  let progsFd = pinned(dir, 'map_progs');
  if (genFd === undefined || progsFd === undefined) {
    if (genFd !== undefined) close(genFd);
    if (progsFd !== undefined) close(progsFd);
    for (const l of staleLinks()) unpin(dir, l);
    genFd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1, name: `${name}_gen` });
    try {
      progsFd = mapCreate({ type: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2 * slots, name: `${name}_progs` });
    } catch (e) { close(genFd); throw e; }
    try {
      // an inactive generation 1 is "active" until the first flip, so the new one goes to 0
      mapUpdate(genFd, u32Key(0), u32Key(1));
      unpin(dir, 'map_gen'); unpin(dir, 'map_progs');
      objPin(progsFd, path.join(dir, 'map_progs'));
      objPin(genFd, path.join(dir, 'map_gen'));
    } catch (e) { close(genFd); close(progsFd); throw e; }
  }
  const cur = Buffer.alloc(4);
  mapLookup(genFd, u32Key(0), cur);
  const old = (cur.readUInt32LE(0) & 1) as 0 | 1;
  return { genFd, progsFd, old, next: (1 - old) as 0 | 1 };
}

/** Attach `progFd` at the first of `priorities` no other hook holds (EBUSY); `what` names the hook in the error. */
export function attachFirstFree(progFd: number, pf: number, hooknum: number, priorities: readonly number[], what: string): { fd: number; priority: number } {
  for (const priority of priorities) {
    try {
      return { fd: linkCreateNetfilter(progFd, pf, hooknum, priority), priority };
    } catch (e) {
      if (!(e instanceof SysError && e.errno === 16 /* EBUSY */)) throw e;
    }
  }
  throw new SysError('link create (netfilter)', 16, `priorities ${Math.min(...priorities)} to ${Math.max(...priorities)} are all taken at hook ${hooknum} (${what})`);
}
