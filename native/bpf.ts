/**
 * Typed wrappers of the bpf() commands bpftables uses. Each returns plain
 * values or throws SysError/BpfLoadError; fds are owned by the caller.
 */
import { addressOf, bpfSyscall, bpfSyscallRaw, close, SysError, withSignalsHeld } from './libc';

export const Cmd = {
  MAP_CREATE: 0, MAP_LOOKUP_ELEM: 1, MAP_UPDATE_ELEM: 2, MAP_DELETE_ELEM: 3, MAP_GET_NEXT_KEY: 4, PROG_LOAD: 5,
  OBJ_PIN: 6, OBJ_GET: 7, PROG_TEST_RUN: 10, PROG_GET_NEXT_ID: 11, MAP_GET_NEXT_ID: 12,
  PROG_GET_FD_BY_ID: 13, MAP_GET_FD_BY_ID: 14, OBJ_GET_INFO_BY_FD: 15, MAP_FREEZE: 22,
  LINK_CREATE: 28, LINK_GET_FD_BY_ID: 30, LINK_GET_NEXT_ID: 31, LINK_DETACH: 34,
} as const;

export const MapType = { HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERCPU_ARRAY: 6, LPM_TRIE: 11, LRU_HASH: 9, RINGBUF: 27 } as const;
export const PROG_TYPE_NETFILTER = 32;
export const ATTACH_NETFILTER = 45;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;
export const BPF_F_RDONLY_PROG = 1 << 7;

const ATTR_SIZE = 160;

function attr(): Buffer { return Buffer.alloc(ATTR_SIZE); }
function putName(a: Buffer, off: number, name: string): void {
  a.write(name.replace(/[^A-Za-z0-9_.]/g, '_').slice(0, 15), off, 'latin1');
}
function cstr(s: string): Buffer { return Buffer.from(s + '\0', 'utf8'); }

export interface MapSpec {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  name: string;
  /** map_extra: a bloom filter's number of hash functions */
  extra?: number;
}

export function mapCreate(spec: MapSpec): number {
  const a = attr();
  a.writeUInt32LE(spec.type, 0);
  a.writeUInt32LE(spec.keySize, 4);
  a.writeUInt32LE(spec.valueSize, 8);
  a.writeUInt32LE(spec.maxEntries, 12);
  a.writeUInt32LE(spec.flags ?? 0, 16);
  putName(a, 28, spec.name);
  if (spec.extra) a.writeBigUInt64LE(BigInt(spec.extra), 64);
  return bpfSyscall(Cmd.MAP_CREATE, a, `map create ${spec.name}`);
}

function elemAttr(fd: number, key: Buffer, value: Buffer | null, flags: number): Buffer {
  const a = attr();
  a.writeUInt32LE(fd, 0);
  a.writeBigUInt64LE(addressOf(key), 8);
  if (value) a.writeBigUInt64LE(addressOf(value), 16);
  a.writeBigUInt64LE(BigInt(flags), 24);
  return a;
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = 0): void {
  bpfSyscall(Cmd.MAP_UPDATE_ELEM, elemAttr(fd, key, value, flags), 'map update');
}
/**
 * Update many elements in one syscall (BPF_MAP_UPDATE_BATCH); keys and values
 * are concatenated fixed-size records. Falls back to one update per element
 * for map types without batch support.
 */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): void {
  if (count === 0) return;
  const a = attr();
  a.writeBigUInt64LE(addressOf(keys), 16);
  a.writeBigUInt64LE(addressOf(values), 24);
  a.writeUInt32LE(count, 32);
  a.writeUInt32LE(fd, 36);
  const r = bpfSyscallRaw(26 /* BPF_MAP_UPDATE_BATCH */, a);
  if (r >= 0 && a.readUInt32LE(32) === count) return;
  const ks = keys.length / count, vs = values.length / count;
  for (let i = 0; i < count; i++) mapUpdate(fd, keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs));
}

/** Returns false when the key is absent. */
export function mapLookup(fd: number, key: Buffer, value: Buffer): boolean {
  const r = bpfSyscallRaw(Cmd.MAP_LOOKUP_ELEM, elemAttr(fd, key, value, 0));
  if (r === -2) return false;
  if (r < 0) throw new SysError('map lookup', -r);
  return true;
}
export function mapDelete(fd: number, key: Buffer): boolean {
  const r = bpfSyscallRaw(Cmd.MAP_DELETE_ELEM, elemAttr(fd, key, null, 0));
  if (r === -2) return false;
  if (r < 0) throw new SysError('map delete', -r);
  return true;
}
/** Every key of a map (in the kernel's iteration order), each `keySize` bytes. */
export function mapKeys(fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const a = attr();
    a.writeUInt32LE(fd, 0);
    if (prev) a.writeBigUInt64LE(addressOf(prev), 8);
    a.writeBigUInt64LE(addressOf(next), 16);
    const r = bpfSyscallRaw(Cmd.MAP_GET_NEXT_KEY, a);
    if (r === -2) return keys;
    if (r < 0) throw new SysError('map get next key', -r);
    keys.push(next);
    prev = next;
  }
}
/**
 * Every entry of a map, read BPF_MAP_LOOKUP_BATCH a few thousand at a time
 * (one system call each, where walking the keys takes two an entry), in the
 * kernel's order; key by key for a map type without batch lookups.
 */
export function mapEntries(fd: number, keySize: number, valueSize: number): { key: Buffer; value: Buffer }[] {
  const CHUNK = 4096;
  const keys = Buffer.alloc(keySize * CHUNK), values = Buffer.alloc(valueSize * CHUNK);
  // where the next batch starts: a hash map's bucket, another map's key
  const from = Buffer.alloc(Math.max(keySize, 8)), next = Buffer.alloc(Math.max(keySize, 8));
  const out: { key: Buffer; value: Buffer }[] = [];
  for (let first = true; ; first = false) {
    const a = attr();
    if (!first) a.writeBigUInt64LE(addressOf(from), 0);
    a.writeBigUInt64LE(addressOf(next), 8);
    a.writeBigUInt64LE(addressOf(keys), 16);
    a.writeBigUInt64LE(addressOf(values), 24);
    a.writeUInt32LE(CHUNK, 32);
    a.writeUInt32LE(fd, 36);
    const r = bpfSyscallRaw(24 /* BPF_MAP_LOOKUP_BATCH */, a);
    // ENOTSUPP (524), EOPNOTSUPP: no batch lookups for this map type
    if (r < 0 && first && (r === -524 || r === -95)) {
      return mapKeys(fd, keySize).flatMap((key) => { const value = Buffer.alloc(valueSize); return mapLookup(fd, key, value) ? [{ key, value }] : []; });
    }
    if (r < 0 && r !== -2) throw new SysError('map lookup batch', -r);
    const n = a.readUInt32LE(32);
    for (let i = 0; i < n; i++) out.push({ key: Buffer.from(keys.subarray(i * keySize, (i + 1) * keySize)), value: Buffer.from(values.subarray(i * valueSize, (i + 1) * valueSize)) });
    // ENOENT: the last entries were these
    if (r === -2) return out;
    next.copy(from);
  }
}
/** Delete every entry of a map: a batch lookup, then one BPF_MAP_DELETE_BATCH (key by key for a map type without it). */
export function mapClear(fd: number, keySize: number, valueSize: number): void {
  const entries = mapEntries(fd, keySize, valueSize);
  if (entries.length === 0) return;
  const keys = Buffer.concat(entries.map((e) => e.key));
  const a = attr();
  a.writeBigUInt64LE(addressOf(keys), 16);
  a.writeUInt32LE(entries.length, 32);
  a.writeUInt32LE(fd, 36);
  const r = bpfSyscallRaw(27 /* BPF_MAP_DELETE_BATCH */, a);
  if (r >= 0) return;
  // no batch deletes for this map type (nothing done), or a key already gone (the ones before it done): the rest one by one
  const done = r === -524 || r === -95 ? 0 : a.readUInt32LE(32);
  for (const e of entries.slice(done)) mapDelete(fd, e.key);
}
export function mapFreeze(fd: number): void {
  const a = attr();
  a.writeUInt32LE(fd, 0);
  bpfSyscall(Cmd.MAP_FREEZE, a, 'map freeze');
}
export function u32Key(k: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(k >>> 0); return b; }

export class BpfLoadError extends Error {
  constructor(readonly errno: number, readonly log: string, readonly progName: string) {
    super(`loading ${progName} failed (errno ${errno})`);
  }
}

export interface ProgSpec {
  type: number;
  expectedAttachType: number;
  insns: Buffer;
  name: string;
  license?: string;
  /** BTF and func_info, for programs with global functions */
  btf?: { fd: number; funcInfo: Buffer; count: number };
}

/** Load a BTF blob; returns its fd. */
export function btfLoad(blob: Buffer): number {
  const a = attr();
  a.writeBigUInt64LE(addressOf(blob), 0);
  a.writeUInt32LE(blob.length, 16);
  const r = bpfSyscallRaw(18 /* BPF_BTF_LOAD */, a);
  if (r >= 0) return r;
  const log = Buffer.alloc(65536);
  a.writeBigUInt64LE(addressOf(log), 8);
  a.writeUInt32LE(log.length, 20);
  a.writeUInt32LE(1, 24);
  const r2 = bpfSyscallRaw(18, a);
  if (r2 >= 0) return r2;
  throw new BpfLoadError(-r, log.toString('utf8', 0, Math.max(0, log.indexOf(0))), 'btf');
}

/**
 * Load a program. On failure retries with the verifier log enabled and throws
 * BpfLoadError with the log.
 */
export function progLoad(spec: ProgSpec): number {
  const license = cstr(spec.license ?? 'GPL');
  const build = (logBuf: Buffer | null, level: number): Buffer => {
    const a = attr();
    a.writeUInt32LE(spec.type, 0);
    a.writeUInt32LE(spec.insns.length / 8, 4);
    a.writeBigUInt64LE(addressOf(spec.insns), 8);
    a.writeBigUInt64LE(addressOf(license), 16);
    if (logBuf) {
      a.writeUInt32LE(level, 24);
      a.writeUInt32LE(logBuf.length, 28);
      a.writeBigUInt64LE(addressOf(logBuf), 32);
    }
    putName(a, 48, spec.name);
    a.writeUInt32LE(spec.expectedAttachType, 68);
    if (spec.btf) {
      a.writeUInt32LE(spec.btf.fd, 72);
      a.writeUInt32LE(8, 76);
      a.writeBigUInt64LE(addressOf(spec.btf.funcInfo), 80);
      a.writeUInt32LE(spec.btf.count, 88);
    }
    return a;
  };
  // the verifier gives up with EAGAIN when a signal is pending: hold them off, and still try again like libbpf does
  const load = (attr: Buffer): number => withSignalsHeld(() => {
    let r = bpfSyscallRaw(Cmd.PROG_LOAD, attr);
    for (let tries = 0; r === -11 && tries < 5; tries++) r = bpfSyscallRaw(Cmd.PROG_LOAD, attr);
    return r;
  });
  const r = load(build(null, 0));
  if (r >= 0) return r;
  // reload with the verifier log to say why (the kernel keeps the log's tail when it overflows)
  const logBuf = Buffer.alloc(1 << 20);
  const r2 = load(build(logBuf, 1));
  if (r2 >= 0) return r2;
  const end = logBuf.indexOf(0);
  throw new BpfLoadError(-r, logBuf.toString('utf8', 0, end < 0 ? logBuf.length : end), spec.name);
}

export function linkCreateNetfilter(progFd: number, pf: number, hooknum: number, priority: number): number {
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(ATTACH_NETFILTER, 8);
  a.writeUInt32LE(pf, 16);
  a.writeUInt32LE(hooknum, 20);
  a.writeInt32LE(priority, 24);
  return bpfSyscall(Cmd.LINK_CREATE, a, 'link create (netfilter)');
}

export function objPin(fd: number, path: string): void {
  const p = cstr(path);
  const a = attr();
  a.writeBigUInt64LE(addressOf(p), 0);
  a.writeUInt32LE(fd, 8);
  bpfSyscall(Cmd.OBJ_PIN, a, `pin ${path}`);
}

/** Open a pinned object; returns -errno when it cannot (ENOENT when absent). */
export function objGet(path: string): number {
  const p = cstr(path);
  const a = attr();
  a.writeBigUInt64LE(addressOf(p), 0);
  return bpfSyscallRaw(Cmd.OBJ_GET, a);
}

/** A new fd for the program with kernel id `id` (a link's program, say). */
export function progFdById(id: number): number {
  const a = attr();
  a.writeUInt32LE(id, 0);
  return bpfSyscall(Cmd.PROG_GET_FD_BY_ID, a, `prog ${id}`);
}

/** A new fd for the map with kernel id `id` (one a program holds, say). */
export function mapFdById(id: number): number {
  const a = attr();
  a.writeUInt32LE(id, 0);
  return bpfSyscall(Cmd.MAP_GET_FD_BY_ID, a, `map ${id}`);
}

export interface TestRunResult { retval: number; durationNs: number }

/**
 * Run a netfilter program on an IPv4/IPv6 packet as if at `hooknum`: the
 * kernel builds the skb from an Ethernet frame except at LOCAL_OUT, where
 * the data is the bare IP packet; at the hook the program sees the IP header
 * at offset 0 either way, with the loopback device as in/out.
 */
export function testRunNf(progFd: number, ipPacket: Buffer, hooknum: number, pf: number = NFPROTO_IPV4, repeat = 1): TestRunResult {
  const ctx = Buffer.alloc(48);
  ctx[0] = hooknum;
  ctx[1] = pf;
  let data = ipPacket;
  if (hooknum !== 3) {
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(pf === NFPROTO_IPV6 ? 0x86dd : 0x0800, 12);
    data = Buffer.concat([eth, ipPacket]);
  }
  return testRun(progFd, data, repeat, ctx);
}

/** BPF_PROG_TEST_RUN on a netfilter program; `packet` starts with an Ethernet header. */
export function testRun(progFd: number, packet: Buffer, repeat = 1, ctx?: Buffer): TestRunResult {
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(packet.length, 8);
  a.writeBigUInt64LE(addressOf(packet), 16);
  a.writeUInt32LE(repeat, 32);
  if (ctx) {
    a.writeUInt32LE(ctx.length, 40);
    a.writeBigUInt64LE(addressOf(ctx), 48);
  }
  bpfSyscall(Cmd.PROG_TEST_RUN, a, 'prog test run');
  return { retval: a.readUInt32LE(4), durationNs: a.readUInt32LE(36) };
}

export interface ProgInfo { type: number; id: number; xlatedLen: number; jitedLen: number; name: string; mapIds: number[]; verifiedInsns: number }
export interface MapInfo { type: number; id: number; keySize: number; valueSize: number; maxEntries: number; name: string }
export interface LinkInfo { type: number; id: number; progId: number; pf: number; hooknum: number; priority: number }

function objInfo(fd: number, size: number, extra?: (info: Buffer) => void): Buffer {
  const info = Buffer.alloc(size);
  extra?.(info);
  const a = attr();
  a.writeUInt32LE(fd, 0);
  a.writeUInt32LE(size, 4);
  a.writeBigUInt64LE(addressOf(info), 8);
  bpfSyscall(Cmd.OBJ_GET_INFO_BY_FD, a, 'obj get info');
  return info;
}

export function progInfo(fd: number): ProgInfo {
  const ids = Buffer.alloc(4 * 64);
  const info = objInfo(fd, 256, (i) => { i.writeUInt32LE(64, 52); i.writeBigUInt64LE(addressOf(ids), 56); });
  const nMaps = Math.min(info.readUInt32LE(52), 64);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), jitedLen: info.readUInt32LE(16), xlatedLen: info.readUInt32LE(20),
    name: info.toString('latin1', 64, 80).replace(/\0.*$/s, ''),
    mapIds: Array.from({ length: nMaps }, (_, k) => ids.readUInt32LE(k * 4)),
    verifiedInsns: info.readUInt32LE(212),
  };
}
export function mapInfo(fd: number): MapInfo {
  const info = objInfo(fd, 96);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16), name: info.toString('latin1', 24, 40).replace(/\0.*$/s, ''),
  };
}
export function linkInfo(fd: number): LinkInfo {
  const info = objInfo(fd, 64);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), progId: info.readUInt32LE(8),
    pf: info.readUInt32LE(16), hooknum: info.readUInt32LE(20), priority: info.readInt32LE(24),
  };
}

/** All ids of one object kind currently in the kernel (for leak checks and status). */
export function allIds(kind: 'prog' | 'map' | 'link'): number[] {
  const cmd = kind === 'prog' ? Cmd.PROG_GET_NEXT_ID : kind === 'map' ? Cmd.MAP_GET_NEXT_ID : Cmd.LINK_GET_NEXT_ID;
  const out: number[] = [];
  let id = 0;
  for (;;) {
    const a = attr();
    a.writeUInt32LE(id, 0);
    const r = bpfSyscallRaw(cmd, a);
    if (r < 0) break;
    id = a.readUInt32LE(4);
    out.push(id);
  }
  return out;
}

export { close };
