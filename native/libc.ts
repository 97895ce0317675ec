/**
 * The few libc entry points bpftables needs, through koffi. Everything here
 * has side effects; callers get errors as SysError values carrying errno.
 */
import koffi from 'koffi';
import os from 'node:os';

const libc = koffi.load('libc.so.6');

const _syscall = libc.func('long syscall(long, ...)');
const _close = libc.func('int close(int)');
const _memcpy = libc.func('void *memcpy(void *, void *, size_t)');
const _setns = libc.func('int setns(int, int)');
const _mount = libc.func('int mount(const char *, const char *, const char *, unsigned long, void *)');
const _socket = libc.func('int socket(int, int, int)');
const _sendto = libc.func('long sendto(int, void *, size_t, int, void *, uint32_t)');
const _recv = libc.func('long recv(int, void *, size_t, int)');
const _bind = libc.func('int bind(int, void *, uint32_t)');
const _setsockopt = libc.func('int setsockopt(int, int, int, void *, uint32_t)');
const _getsockopt = libc.func('int getsockopt(int, int, int, void *, _Inout_ uint32_t *)');

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
  if (n < 0) throw new SysError(call, koffi.errno());
  return n;
}

/** The address of a Buffer's memory (stable: Buffer backing stores do not move). */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(_memcpy(buf, buf, 0)) as bigint;
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
  return r < 0 ? -koffi.errno() : r;
}

export function close(fd: number): void { if (fd >= 0) _close(fd); }

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
  return r < 0 ? -koffi.errno() : r;
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
