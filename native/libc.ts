/**
 * The few libc entry points bpftables needs, through koffi. Everything here
 * has side effects; callers get errors as SysError values carrying errno.
 */
import type Koffi from 'koffi';
import os from 'node:os';

type KoffiModule = typeof Koffi;
type CFunction = ReturnType<ReturnType<KoffiModule['load']>['func']>;
let loaded: { koffi: KoffiModule; libc: ReturnType<KoffiModule['load']> } | undefined;

/**
 * koffi and libc, loaded on first use: a command that makes no system call
 * (`-V`, `-h`, a translation, a parameter error) starts without them.
 */
export function ffi(): { koffi: KoffiModule; libc: ReturnType<KoffiModule['load']> } {
  if (!loaded) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as KoffiModule;
    loaded = { koffi, libc: koffi.load('libc.so.6') };
  }
  return loaded;
}

/** A libc function by its C prototype, declared on its first call. */
export function libcFn(proto: string): CFunction {
  let f: CFunction | undefined;
  return ((...args: unknown[]) => (f ??= ffi().libc.func(proto))(...args)) as CFunction;
}

const _syscall = libcFn('long syscall(long, ...)');
const _close = libcFn('int close(int)');
const _memcpy = libcFn('void *memcpy(void *, void *, size_t)');
const _setns = libcFn('int setns(int, int)');
const _mount = libcFn('int mount(const char *, const char *, const char *, unsigned long, void *)');
const _socket = libcFn('int socket(int, int, int)');
const _sendto = libcFn('long sendto(int, void *, size_t, int, void *, uint32_t)');
const _recv = libcFn('long recv(int, void *, size_t, int)');
const _bind = libcFn('int bind(int, void *, uint32_t)');
const _setsockopt = libcFn('int setsockopt(int, int, int, void *, uint32_t)');
const _getsockopt = libcFn('int getsockopt(int, int, int, void *, _Inout_ uint32_t *)');
const _sigmask = libcFn('int pthread_sigmask(int, void *, void *)');
const _ifNameToIndex = libcFn('unsigned int if_nametoindex(const char *)');
const _ifIndexToName = libcFn('char *if_indextoname(unsigned int, _Out_ uint8_t *)');

const _exit = libcFn('void _exit(int)');

/** Has this process loaded koffi and libc (made a system call through them)? */
export const libcLoaded = (): boolean => loaded !== undefined;

/**
 * End the process at once with `code` (_exit(2)): no 'exit' listener runs and
 * Node's teardown is skipped. For the command boundary (compat/cli), once the
 * listeners have run and everything is written.
 */
export function exitNow(code: number): never {
  _exit(code);
  throw new Error('_exit returned');
}

const SIG_BLOCK = 0, SIG_SETMASK = 2;
/** glibc's sigset_t: 1024 bits */
const ALL_SIGNALS = Buffer.alloc(128, 0xff);

/**
 * Run `fn` with every signal held off this thread (the kernel never holds
 * SIGKILL or SIGSTOP). The verifier gives up with EAGAIN whenever a signal is
 * pending, and a big program takes long enough for one to arrive — a child
 * exiting, a resize, or a sampling profiler's tick every few microseconds.
 * Held signals are delivered when `fn` returns.
 */
export function withSignalsHeld<T>(fn: () => T): T {
  const old = Buffer.alloc(128);
  if (Number(_sigmask(SIG_BLOCK, ALL_SIGNALS, old)) !== 0) return fn();
  try { return fn(); } finally { _sigmask(SIG_SETMASK, old, null); }
}

export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number, detail?: string) {
    super(`${call}: ${os.constants.errno ? errnoName(errno) : errno} (${errno})${detail ? `: ${detail}` : ''}`);
  }
}

export function errnoName(errno: number): string {
  for (const [k, v] of Object.entries(os.constants.errno)) if (v === errno) return k;
  return `errno ${errno}`;
}

function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) throw new SysError(call, ffi().koffi.errno());
  return n;
}

/** The address of a Buffer's memory (stable: Buffer backing stores do not move). */
export function addressOf(buf: Buffer): bigint {
  return ffi().koffi.address(_memcpy(buf, buf, 0)) as bigint;
}

export const SYS_bpf = 321;
export const SYS_pidfd_open = 434;

/** bpf(cmd, attr, size); returns the non-negative result or throws SysError. */
export function bpfSyscall(cmd: number, attr: Buffer, name: string): number {
  const r = _syscall(SYS_bpf, 'int', cmd, 'void *', attr, 'uint32_t', attr.length) as number | bigint;
  return check(name, r);
}

/** Like bpfSyscall but returns -errno instead of throwing. */
export function bpfSyscallRaw(cmd: number, attr: Buffer): number {
  const r = Number(_syscall(SYS_bpf, 'int', cmd, 'void *', attr, 'uint32_t', attr.length));
  return r < 0 ? -ffi().koffi.errno() : r;
}

export function close(fd: number): void { if (fd >= 0) _close(fd); }

/** This network namespace's index of an interface (undefined: none of that name). */
export function ifNameToIndex(name: string): number | undefined {
  const n = Number(_ifNameToIndex(name));
  return n > 0 ? n : undefined;
}
/** This network namespace's name of an interface index (undefined: none). */
export function ifIndexToName(index: number): string | undefined {
  const buf = Buffer.alloc(16);
  if (!_ifIndexToName(index >>> 0, buf)) return undefined;
  return buf.subarray(0, Math.max(0, buf.indexOf(0))).toString('latin1');
}

export const CLONE_NEWNET = 0x40000000;
export function setns(fd: number, nstype: number): void { check('setns', _setns(fd, nstype)); }

export function mount(source: string, target: string, fstype: string, flags: number): void {
  check(`mount ${target}`, _mount(source, target, fstype, flags, null));
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', _socket(domain, type, protocol));
}
export function sendto(fd: number, data: Buffer, flags: number, addr: Buffer | null): number {
  return check('sendto', _sendto(fd, data, data.length, flags, addr, addr ? addr.length : 0));
}
/** recv; returns -errno on failure (EAGAIN is routine for non-blocking polls). */
export function recv(fd: number, buf: Buffer, flags: number): number {
  const r = Number(_recv(fd, buf, buf.length, flags));
  return r < 0 ? -ffi().koffi.errno() : r;
}
export function bind(fd: number, addr: Buffer): void { check('bind', _bind(fd, addr, addr.length)); }
export function setsockopt(fd: number, level: number, opt: number, val: Buffer): void {
  check('setsockopt', _setsockopt(fd, level, opt, val, val.length));
}
export function getsockopt(fd: number, level: number, opt: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const len = [size];
  check('getsockopt', _getsockopt(fd, level, opt, buf, len));
  return buf.subarray(0, len[0]);
}

const _mmap = libcFn('void *mmap(void *, size_t, int, int, int, long)');
const _munmap = libcFn('int munmap(void *, size_t)');
const _epollCreate1 = libcFn('int epoll_create1(int)');
const _epollCtl = libcFn('int epoll_ctl(int, int, int, void *)');
const _epollWait = libcFn('int epoll_wait(int, void *, int, int)');
const _connect = libcFn('int connect(int, void *, uint32_t)');
const _getsockname = libcFn('int getsockname(int, void *, _Inout_ uint32_t *)');

/** A shared mapping of `len` bytes of fd at `offset`, as an ArrayBuffer over the mapped memory. */
export interface Mapping { ptr: unknown; len: number; view: ArrayBuffer }
export function mmap(fd: number, len: number, writable: boolean, offset: number): Mapping {
  const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
  const ptr = _mmap(null, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, offset);
  const addr = ffi().koffi.address(ptr) as bigint;
  if (addr === 0xffffffffffffffffn) throw new SysError('mmap', ffi().koffi.errno());
  return { ptr, len, view: ffi().koffi.view(ptr, len) as ArrayBuffer };
}
export function munmap(m: Mapping): void { _munmap(m.ptr, m.len); }

/** An epoll instance watching `fds` for input. */
export function epollFor(fds: number[]): number {
  const ep = check('epoll_create1', _epollCreate1(0o2000000 /* EPOLL_CLOEXEC */));
  for (const fd of fds) {
    const ev = Buffer.alloc(12);
    ev.writeUInt32LE(1 /* EPOLLIN */, 0);
    ev.writeUInt32LE(fd, 4);
    check('epoll_ctl', _epollCtl(ep, 1 /* EPOLL_CTL_ADD */, fd, ev));
  }
  return ep;
}
/** Watch one more fd for input. */
export function epollAdd(ep: number, fd: number): void {
  const ev = Buffer.alloc(12);
  ev.writeUInt32LE(1 /* EPOLLIN */, 0);
  ev.writeUInt32LE(fd, 4);
  check('epoll_ctl', _epollCtl(ep, 1 /* EPOLL_CTL_ADD */, fd, ev));
}
/** Wait up to `timeoutMs` for input; returns how many fds are ready (0 on timeout or EINTR). */
export function epollWait(ep: number, timeoutMs: number): number {
  const evs = Buffer.alloc(12 * 8);
  const n = Number(_epollWait(ep, evs, 8, timeoutMs));
  return n < 0 ? 0 : n;
}

/** The source address the routing table picks for `dst` (4 or 16 bytes): a connected UDP socket's own address. */
export function routeSource(dst: Buffer): Buffer | undefined {
  const v6 = dst.length === 16;
  const fd = socket(v6 ? 10 : 2, 2 /* SOCK_DGRAM */ | 0o2000000, 0);
  try {
    const sa = Buffer.alloc(v6 ? 28 : 16);
    sa.writeUInt16LE(v6 ? 10 : 2, 0);
    sa.writeUInt16BE(9, 2); // any port: nothing is sent
    dst.copy(sa, v6 ? 8 : 4);
    if (Number(_connect(fd, sa, sa.length)) < 0) return undefined;
    const me = Buffer.alloc(sa.length);
    const len = [me.length];
    if (Number(_getsockname(fd, me, len)) < 0) return undefined;
    return Buffer.from(me.subarray(v6 ? 8 : 4, v6 ? 24 : 8));
  } finally { close(fd); }
}
