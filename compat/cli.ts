/**
 * The command boundary: turns error values into iptables-style messages and
 * exit codes, and checks the preconditions every command shares.
 */
import { isAscii } from 'node:buffer';
import fs from 'node:fs';
import { BpftablesError } from '../xlate/errors';
import { SysError } from '../native/libc';
import { acquireXtablesLock, LockBusy } from '../native/lock';
import { StateFsError } from '../native/statefs';
import { log, setVerbose } from './log';
import { paint } from './colour';

export const VERSION = 'v1.8.11 (bpftables)';

export interface Io { out: (s: string) => void; err: (s: string) => void }
/**
 * Write all of `s` to stdout with write(2) itself: process.stdout would load
 * node's stream modules (about 5 ms of a command's start), and on Linux it
 * writes pipes and files synchronously too. A non-blocking descriptor that
 * is full is waited for; a reader that went away (`| head`) ends the
 * output, as for iptables, not in an unhandled EPIPE.
 */
function writeStdout(s: string): void {
  let buf = Buffer.from(s);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(fs.writeSync(1, buf));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); continue; }
      if (code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    }
  }
}
export const stdio: Io = { out: (s) => { if (s) writeStdout(s); }, err: (s) => { if (s) process.stderr.write(s); } };

/**
 * Run `fn` holding the xtables lock (`wait` as for -w). When the lock stays
 * busy, prints iptables' message and returns exit status 4 without running `fn`.
 */
export function withXtablesLock(io: Io, wait: number | undefined, intervalMs: number, fn: () => number): number {
  let lock;
  try {
    lock = acquireXtablesLock(wait, intervalMs);
  } catch (e) {
    if (!(e instanceof LockBusy)) throw e;
    io.err(wait ? `Another app is currently holding the xtables lock. Stopped waiting after ${wait}s.\n`
      : 'Another app is currently holding the xtables lock. Perhaps you want to use the -w option?\n');
    return 4;
  }
  try { return fn(); } finally { lock.release(); }
}

/**
 * A file's text (`-`: standard input). An ASCII file (any iptables-save
 * output) is read as latin1, which copies its bytes, where UTF-8 decoding
 * costs a third more of a 100k-rule restore's read; anything else as UTF-8.
 */
export function readText(file: string): string {
  const bytes = fs.readFileSync(file === '-' ? 0 : file);
  return bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
}

export function requireRoot(prog: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new BpftablesError(`${prog}: must be run as root (it loads BPF programs and changes the firewall)`, 4);
  }
}

/** Run a command main; never returns normally into the caller's error paths. */
export function runMain(prog: string, main: (argv: string[], io: Io) => number | void, argv = process.argv.slice(2)): void {
  if (argv.includes('--verbose') || process.env.BPFTABLES_LOG === 'debug') setVerbose();
  let code = 0;
  // what a command writes to stderr reports an error: red on a terminal (warnings come through log, in yellow)
  const io: Io = { out: stdio.out, err: (s) => stdio.err(paint('error', s)) };
  try {
    code = main(argv, io) ?? 0;
  } catch (e) {
    code = reportError(prog, e, io);
  }
  process.exitCode = code;
}

export function reportError(prog: string, e: unknown, io: Io): number {
  if (e instanceof BpftablesError) {
    io.err(`${e.message}\n`);
    return e.status;
  }
  if (e instanceof SysError || e instanceof StateFsError) {
    log.debug({ err: e }, 'system error');
    io.err(`${prog}: ${e.message}\n`);
    return e instanceof SysError && (e.errno === 1 || e.errno === 13) ? 4 : 1;
  }
  log.error({ err: e }, 'internal error');
  io.err(`${prog}: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}
