/**
 * ipsets as BPF maps, pinned per network namespace in <ns>/sets:
 *   s_<hex name>_data   the elements: a hash map (hash:ip, hash:ip,port) or an
 *                       LPM trie (hash:net, hash:net,port), value = expiry
 *                       (CLOCK_MONOTONIC ns, 0 = none) as the hook programs
 *                       compare it with bpf_ktime_get_ns
 *   s_<hex name>_meta   the set's header (SetMeta as JSON)
 * Hook programs hold the data maps of the sets their rules name, so element
 * changes take effect at once; swap and rename exchange pins and the engine
 * reloads the tables that name the sets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { close, mapClear, mapCreate, mapDelete, mapEntries, mapLookup, MapType, mapUpdate, mapUpdateBatch, objGet, objPin, u32Key } from './bpf';
import { SysError } from './libc';
import { namespaceStateDir } from './statefs';
import { dimensions, type SetElement, type SetMeta } from '../xlate/ipset';

const META_SIZE = 512;
const BPF_F_NO_PREALLOC = 1;

const hexName = (name: string): string => Buffer.from(name, 'utf8').toString('hex');
function setsDir(create: boolean): string | undefined {
  const ns = namespaceStateDir(create);
  if (!ns) return undefined;
  const dir = path.join(ns, 'sets');
  if (!fs.existsSync(dir)) {
    if (!create) return undefined;
    fs.mkdirSync(dir, { mode: 0o700 });
  }
  return dir;
}
const pinOf = (dir: string, name: string, kind: 'data' | 'meta'): string => path.join(dir, `s_${hexName(name)}_${kind}`);

/** Key layout of a set's data map (cgen/match.ts builds the same keys from packets). */
export function keySize(meta: Pick<SetMeta, 'type' | 'family'>): number {
  const a = meta.family === 4 ? 4 : 16;
  return (meta.type.startsWith('hash:net') ? 4 : 0) + (dimensions(meta.type) === 2 ? 4 : 0) + a;
}
export const isLpm = (meta: Pick<SetMeta, 'type'>): boolean => meta.type.startsWith('hash:net');

/** The map key of an element: [prefixlen u32 LE] [proto u8, 0, port u16 BE] address (network order). */
export function elementKey(el: SetElement, meta: Pick<SetMeta, 'type' | 'family'>): Buffer {
  const k = Buffer.alloc(keySize(meta));
  let o = 0;
  const ported = dimensions(meta.type) === 2;
  if (isLpm(meta)) { k.writeUInt32LE((ported ? 32 : 0) + el.cidr, 0); o = 4; }
  if (ported) { k[o] = el.proto!; k.writeUInt16BE(el.port!, o + 2); o += 4; }
  for (const w of el.addr) { k.writeUInt32BE(w, o); o += 4; }
  return k;
}

export function keyElement(k: Buffer, meta: Pick<SetMeta, 'type' | 'family'>): SetElement {
  let o = 0;
  const ported = dimensions(meta.type) === 2;
  let cidr = meta.family === 4 ? 32 : 128;
  if (isLpm(meta)) { cidr = k.readUInt32LE(0) - (ported ? 32 : 0); o = 4; }
  const el: SetElement = { addr: [], cidr };
  if (ported) { el.proto = k[o]!; el.port = k.readUInt16BE(o + 2); o += 4; }
  for (let i = 0; i < (meta.family === 4 ? 1 : 4); i++) el.addr.push(k.readUInt32BE(o + 4 * i));
  return el;
}

const nowNs = (): bigint => process.hrtime.bigint();

export interface OpenSet { meta: SetMeta; dataFd: number; close(): void }

function pinned(p: string): number | undefined {
  const fd = objGet(p);
  if (fd >= 0) return fd;
  if (fd === -2) return undefined;
  throw new SysError(`open ${p}`, -fd);
}

function readMeta(fd: number): SetMeta {
  const v = Buffer.alloc(META_SIZE);
  mapLookup(fd, u32Key(0), v);
  return JSON.parse(v.toString('utf8').replace(/\0+$/, '')) as SetMeta;
}
function writeMeta(fd: number, meta: SetMeta): void {
  const v = Buffer.alloc(META_SIZE);
  v.write(JSON.stringify(meta), 'utf8');
  mapUpdate(fd, u32Key(0), v);
}

export function openSet(name: string): OpenSet | undefined {
  const dir = setsDir(false);
  if (!dir) return undefined;
  const mfd = pinned(pinOf(dir, name, 'meta'));
  if (mfd === undefined) return undefined;
  try {
    const meta = readMeta(mfd);
    const dataFd = pinned(pinOf(dir, name, 'data'));
    if (dataFd === undefined) return undefined;
    return { meta, dataFd, close: () => close(dataFd) };
  } finally { close(mfd); }
}

/** Set names in this namespace, in creation order. */
export function setNames(): string[] {
  const dir = setsDir(false);
  if (!dir) return [];
  const metas: { name: string; at: number }[] = [];
  for (const f of fs.readdirSync(dir)) {
    const m = /^s_([0-9a-f]+)_meta$/.exec(f);
    if (!m) continue;
    const fd = pinned(path.join(dir, f));
    if (fd === undefined) continue;
    try { metas.push({ name: Buffer.from(m[1]!, 'hex').toString('utf8'), at: (readMeta(fd) as SetMeta & { created?: number }).created ?? 0 }); } finally { close(fd); }
  }
  return metas.sort((a, b) => a.at - b.at || (a.name < b.name ? -1 : 1)).map((m) => m.name);
}

export function createSet(meta: SetMeta): void {
  const dir = setsDir(true)!;
  const dataFd = mapCreate({
    type: isLpm(meta) ? MapType.LPM_TRIE : MapType.HASH, keySize: keySize(meta), valueSize: 8,
    maxEntries: meta.maxelem, flags: isLpm(meta) ? BPF_F_NO_PREALLOC : 0, name: 'bpft_set',
  });
  const metaFd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: META_SIZE, maxEntries: 1, name: 'bpft_setmeta' });
  try {
    writeMeta(metaFd, { ...meta, created: Date.now() } as SetMeta);
    objPin(dataFd, pinOf(dir, meta.name, 'data'));
    objPin(metaFd, pinOf(dir, meta.name, 'meta'));
  } finally { close(dataFd); close(metaFd); }
}

export function destroySet(name: string): void {
  const dir = setsDir(false);
  if (!dir) return;
  fs.rmSync(pinOf(dir, name, 'meta'), { force: true });
  fs.rmSync(pinOf(dir, name, 'data'), { force: true });
}

/** Give set `from` the name `to` (which must be free). */
export function renameSet(from: string, to: string): void {
  const dir = setsDir(false)!;
  const mfd = pinned(pinOf(dir, from, 'meta'))!;
  try { writeMeta(mfd, { ...readMeta(mfd), name: to }); } finally { close(mfd); }
  fs.renameSync(pinOf(dir, from, 'data'), pinOf(dir, to, 'data'));
  fs.renameSync(pinOf(dir, from, 'meta'), pinOf(dir, to, 'meta'));
}

/** Exchange the names of two sets. */
export function swapSets(a: string, b: string): void {
  const tmp = `\u0000swap${process.pid}`;
  renameSet(a, tmp);
  renameSet(b, a);
  renameSet(tmp, b);
}

/** The element's expiry for a new timeout (seconds; undefined or 0: none). */
export const expiryFor = (timeout: number | undefined): bigint => (timeout ? nowNs() + BigInt(timeout) * 1_000_000_000n : 0n);

/** `add`, with a map that has no room left reported as ipset reports a full set. */
function unlessFull<T>(add: () => T): T {
  try { return add(); } catch (e) {
    if (e instanceof SysError && (e.errno === 7 /* E2BIG */ || e.errno === 28 /* ENOSPC */)) throw new Error('Hash is full, cannot add more elements');
    throw e;
  }
}

/** Add (or with `replace`, re-add) an element; false when it is there already and !replace. */
export function addElement(s: OpenSet, el: SetElement, timeout: number | undefined, replace: boolean): boolean {
  const key = elementKey(el, s.meta);
  const v = Buffer.alloc(8);
  v.writeBigUInt64LE(expiryFor(timeout ?? s.meta.timeout));
  return unlessFull(() => {
    try {
      mapUpdate(s.dataFd, key, v, replace ? 0 : 1 /* BPF_NOEXIST */);
    } catch (e) {
      if (!(e instanceof SysError && e.errno === 17 /* EEXIST */)) throw e;
      // there already: an expired element counts as absent (the trie's lookup finds the exact prefix when it exists)
      const old = Buffer.alloc(8);
      if (mapLookup(s.dataFd, key, old) && live(old)) return false;
      mapUpdate(s.dataFd, key, v);
    }
    return true;
  });
}

/**
 * Add elements known to be absent, without timeouts, in one batch update
 * (what ipset restore does for a set it created: compat/ipset). The ones
 * before an element that does not fit are added.
 */
export function addNewElements(s: OpenSet, keys: readonly Buffer[]): void {
  if (keys.length > 0) unlessFull(() => mapUpdateBatch(s.dataFd, Buffer.concat(keys), Buffer.alloc(8 * keys.length), keys.length));
}

const live = (v: Buffer): boolean => { const exp = v.readBigUInt64LE(0); return exp === 0n || exp > nowNs(); };

export function delElement(s: OpenSet, el: SetElement): boolean {
  const key = elementKey(el, s.meta);
  const v = Buffer.alloc(8);
  const found = mapLookup(s.dataFd, key, v);
  if (!mapDelete(s.dataFd, key)) return false;
  return found && live(v);
}

/** Is an element in the set as the kernel tests it (an address in a network, for the net types: the most specific one)? */
export function testElement(s: OpenSet, el: SetElement): boolean {
  const v = Buffer.alloc(8);
  return mapLookup(s.dataFd, elementKey(el, s.meta), v) && live(v);
}

/** Live elements with their remaining timeout in seconds (undefined: none); expired ones are removed. */
export function elements(s: OpenSet): { el: SetElement; timeout?: number }[] {
  const out: { el: SetElement; timeout?: number }[] = [];
  const now = nowNs();
  for (const { key: k, value: v } of mapEntries(s.dataFd, keySize(s.meta), 8)) {
    const exp = v.readBigUInt64LE(0);
    if (exp !== 0n && exp <= now) { mapDelete(s.dataFd, k); continue; }
    out.push({ el: keyElement(k, s.meta), timeout: s.meta.timeout === undefined ? undefined : exp === 0n ? 0 : Number((exp - now) / 1_000_000_000n) });
  }
  return out;
}

export function flushSet(s: OpenSet): void {
  mapClear(s.dataFd, keySize(s.meta), 8);
}
