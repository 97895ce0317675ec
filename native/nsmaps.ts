/**
 * The maps a network namespace keeps besides its tables, pinned in its
 * state directory (native/statefs.ts) and shared by both families and every
 * generation:
 *   map_events, map_evlost, map_evtold   LOG/REJECT ring buffer, records lost, losses reported (cgen/events.ts, logd)
 *   map_addrtype4                        mirror of the IPv4 local routing table (cgen/addrtype.ts)
 *   map_addrtype6                        mirror of the IPv6 route lookup's answers (cgen/addrtype.ts)
 *   map_fib4, map_fib6                   mirrors of the route lookup's devices, for nft's fib oif (cgen/fibroute.ts)
 *   recent/r_<hex name>                  recent lists (cgen/recent.ts)
 *   hashlimit/h<family>_<hex name>       hashlimit tables (cgen/hashlimit.ts)
 * Named state lives as long as a rule names it, as the kernel keeps it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { close, mapCreate, mapDelete, mapKeys, type MapSpec, MapType, mapUpdate, objGet, objPin } from './bpf';
import { SysError } from './libc';
import { ADDRTYPE_VALUE_SIZE, ADDRTYPE6_KEY_SIZE, addrtype4Entries, addrtype6Entries } from '../cgen/addrtype';
import { FIB_VALUE_SIZE, fib4Entries, fib6Entries } from '../cgen/fibroute';
import { dumpAddrs6, dumpRoutes4, dumpRoutes6, dumpRoutesAll4 } from './rtnl';
import { namespaceStateDir } from './statefs';

export const EVENTS_PIN = 'map_events';
export const EVENTS_LOST_PIN = 'map_evlost';
export const EVENTS_TOLD_PIN = 'map_evtold';
export const ADDRTYPE_PIN = 'map_addrtype4';
export const ADDRTYPE6_PIN = 'map_addrtype6';

const hexName = (name: string): string => Buffer.from(name, 'utf8').toString('hex');

/**
 * The map pinned at `file` below the namespace's directory: opened, or (given
 * `spec`) created and pinned when missing. Undefined when there is none and no spec.
 */
function namespaceMap(file: string, spec?: MapSpec): number | undefined {
  const ns = namespaceStateDir(spec !== undefined);
  if (!ns) return undefined;
  const full = path.join(ns, file);
  if (spec) fs.mkdirSync(path.dirname(full), { recursive: true, mode: 0o700 });
  const fd = objGet(full);
  if (fd >= 0) return fd;
  if (fd !== -2) throw new SysError(`open ${full}`, -fd);
  if (!spec) return undefined;
  const made = mapCreate(spec);
  try { objPin(made, full); } catch (e) { close(made); throw e; }
  return made;
}

/** The names pinned in `sub` below the namespace's directory whose file names `re` takes apart ([, prefix, hex name]). */
function namedPins(sub: string, re: RegExp): { file: string; prefix: string; name: string }[] {
  const ns = namespaceStateDir(false);
  const dir = ns && path.join(ns, sub);
  if (!dir || !fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map((file) => ({ file, m: re.exec(file) })).filter((x) => x.m)
    .map(({ file, m }) => ({ file: path.join(dir, file), prefix: m![1]!, name: Buffer.from(m![2]!, 'hex').toString('utf8') }));
}

/** The events ring buffer (`size` bytes when created). */
export const eventsMapFd = (create: boolean, size: number): number | undefined =>
  namespaceMap(EVENTS_PIN, create ? { type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: size, name: 'bpft_events' } : undefined);

/** One u64: records the programs found no room for (EVENTS_LOST_PIN), or the losses logd has reported (EVENTS_TOLD_PIN). */
export const eventsLostMapFd = (create: boolean, pin = EVENTS_LOST_PIN): number | undefined =>
  namespaceMap(pin, create ? { type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'bpft_evlost' } : undefined);

/** A family's addrtype mirror (empty when created: syncAddrtype fills it). */
export const addrtypeMapFd = (family: 4 | 6, create: boolean): number | undefined => (family === 4
  ? namespaceMap(ADDRTYPE_PIN, create ? { type: MapType.LPM_TRIE, keySize: 8, valueSize: ADDRTYPE_VALUE_SIZE, maxEntries: 65536, flags: 1 /* BPF_F_NO_PREALLOC */, name: 'bpft_addrtype' } : undefined)
  : namespaceMap(ADDRTYPE6_PIN, create ? { type: MapType.LPM_TRIE, keySize: ADDRTYPE6_KEY_SIZE, valueSize: 1, maxEntries: 65536, flags: 1 /* BPF_F_NO_PREALLOC */, name: 'bpft_addrtype6' } : undefined));

export const FIB_PINS = { 4: 'map_fib4', 6: 'map_fib6' } as const;

/** A family's route mirror for fib oif (empty when created: syncFibRoutes fills it). */
export const fibRouteMapFd = (family: 4 | 6, create: boolean): number | undefined => namespaceMap(FIB_PINS[family], create
  ? { type: MapType.LPM_TRIE, keySize: family === 4 ? 8 : ADDRTYPE6_KEY_SIZE, valueSize: FIB_VALUE_SIZE, maxEntries: 65536, flags: 1 /* BPF_F_NO_PREALLOC */, name: `bpft_fib${family}` }
  : undefined);

/** Make a family's route mirror hold the routing state as it is now. */
export function syncFibRoutes(family: 4 | 6, fd: number): void {
  syncEntries(fd, family === 4 ? 8 : ADDRTYPE6_KEY_SIZE, family === 4 ? fib4Entries(dumpRoutesAll4()) : fib6Entries(dumpRoutes6(), dumpAddrs6()));
}

/** Rewrite a mirror's entries and delete the stale ones. */
function syncEntries(fd: number, keySize: number, entries: [Buffer, Buffer][]): void {
  const want = new Map<string, Buffer>();
  for (const [k, v] of entries) want.set(k.toString('hex'), v);
  for (const [k, v] of want) mapUpdate(fd, Buffer.from(k, 'hex'), v);
  for (const k of mapKeys(fd, keySize)) if (!want.has(k.toString('hex'))) mapDelete(fd, k);
}

/** Make a family's mirror hold the routing state as it is now (changed entries rewritten, stale ones deleted). */
export function syncAddrtype(family: 4 | 6, fd: number): void {
  syncEntries(fd, family === 4 ? 8 : ADDRTYPE6_KEY_SIZE, family === 4 ? addrtype4Entries(dumpRoutes4()) : addrtype6Entries(dumpRoutes6(), dumpAddrs6()));
}

const recentFile = (name: string): string => path.join('recent', `r_${hexName(name)}`);
const RECENT_PIN = /^r_()([0-9a-f]*)$/;
const hashlimitFile = (family: 4 | 6, name: string): string => path.join('hashlimit', `h${family}_${hexName(name)}`);
const HASHLIMIT_PIN = /^h([46])_([0-9a-f]*)$/;

/**
 * A recent list's map, created when missing with room for `entries`
 * addresses (the kernel's ip_list_tot; the least recently used makes room).
 */
export const recentMapFd = (name: string, keySize: number, valueSize: number, entries: number): number =>
  namespaceMap(recentFile(name), { type: MapType.LRU_HASH, keySize, valueSize, maxEntries: entries, name: 'bpft_recent' })!;
/** An existing recent list's map, or undefined. */
export const openRecentList = (name: string): number | undefined => namespaceMap(recentFile(name));
/** The names of this namespace's recent lists. */
export const recentLists = (): string[] => namedPins('recent', RECENT_PIN).map((p) => p.name).sort();
/** Forget the recent lists no rule names any more (the kernel frees a list with its last rule). */
export function dropRecentExcept(keep: Set<string>): void {
  for (const p of namedPins('recent', RECENT_PIN)) if (!keep.has(p.name)) fs.rmSync(p.file, { force: true });
}

/** A hashlimit table's map (per family and name), created when missing. */
export const hashlimitMapFd = (family: 4 | 6, name: string, keySize: number, valueSize: number, entries: number): number =>
  namespaceMap(hashlimitFile(family, name), { type: MapType.LRU_HASH, keySize, valueSize, maxEntries: entries, name: 'bpft_hashlimit' })!;
/** The hashlimit tables of this namespace, as "ipv4:name". */
export const hashlimitTablesPinned = (): string[] => namedPins('hashlimit', HASHLIMIT_PIN).map((p) => `ipv${p.prefix}:${p.name}`);
/** Forget the hashlimit tables of `family` no rule names any more (the kernel frees a table with its last rule). */
export function dropHashlimitExcept(family: 4 | 6, keep: Set<string>): void {
  for (const p of namedPins('hashlimit', HASHLIMIT_PIN)) if (Number(p.prefix) === family && !keep.has(p.name)) fs.rmSync(p.file, { force: true });
}
