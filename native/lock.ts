/**
 * The xtables lock: the file iptables serializes its writers on
 * (XTABLES_LOCKFILE, default /run/xtables.lock), taken with flock(2) so that
 * bpftables, iptables-legacy and iptables-nft writers exclude each other, and
 * two bpftables restores never race on the generation flip.
 */
import fs from 'node:fs';
import { ffi, libcFn } from './libc';

const _flock = libcFn('int flock(int, int)');
const LOCK_EX = 2, LOCK_NB = 4, EWOULDBLOCK = 11;

export const lockPath = (): string => process.env.XTABLES_LOCKFILE || '/run/xtables.lock';

export class LockBusy extends Error {}

export interface Lock { release(): void }

/**
 * Take the lock. `waitSeconds`: undefined fails at once when it is held
 * elsewhere; 0 waits for ever; n > 0 waits up to n seconds, retrying every
 * `intervalMs`.
 */
export function acquireXtablesLock(waitSeconds?: number, intervalMs = 1000): Lock {
  const fd = fs.openSync(lockPath(), fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o600);
  const deadline = waitSeconds ? Date.now() + waitSeconds * 1000 : Infinity;
  for (;;) {
    if (waitSeconds === 0) {
      if (_flock(fd, LOCK_EX) === 0) break;
    } else if (_flock(fd, LOCK_EX | LOCK_NB) === 0) break;
    const errno = ffi().koffi.errno();
    if (errno !== EWOULDBLOCK || waitSeconds === undefined || Date.now() >= deadline) {
      fs.closeSync(fd);
      throw new LockBusy(errno === EWOULDBLOCK ? 'busy' : `flock: errno ${errno}`);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
  return { release: () => fs.closeSync(fd) };
}
