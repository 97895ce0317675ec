/**
 * The command boundary: turns error values into iptables-style messages and
 * exit codes, and checks the preconditions every command shares.
 */
import { isAscii } from 'node:buffer';
import fs from 'node:fs';
import { BpftablesError } from '../xlate/errors';
import { exitNow, libcLoaded, SysError } from '../native/libc';
import { acquireXtablesLock, LockBusy } from '../native/lock';
import { StateFsError } from '../native/statefs';
import { log, setVerbose } from './log';
import { paint } from './colour';
import { writeStderr, writeStdout } from './output';

export const VERSION = 'v1.8.11 (bpftables)';

export interface Io { out: (s: string) => void; err: (s: string) => void }
/** stdout and stderr, written synchronously (compat/output) */
export const stdio: Io = { out: writeStdout, err: writeStderr };

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
  endWithoutTeardown();
}

/** Does Node write something at its teardown here: coverage (NODE_V8_COVERAGE, as tap sets for the commands its tests run) or a profile? */
function profiled(): boolean {
  if (process.env.NODE_V8_COVERAGE) return true;
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  return /--(cpu|heap)-prof|--prof\b/.test(flags);
}

/**
 * A command that made system calls (koffi is loaded) ends with _exit(2) once
 * its 'exit' listeners have run. Node's own teardown would first wait for
 * V8's optimizing compiles still running in the background, which a command
 * that ends has no use for: 10 to 30 ms of a restore of 1k or 10k rules on a
 * machine with costly page faults. Nothing is lost: its output is written
 * synchronously (files, pipes and terminals on Linux; the log's too), its
 * kernel objects are in the kernel. Not when some listener came after this
 * one (that listener would not run), nor when Node writes coverage or a
 * profile at its teardown: then Node ends it as usual.
 */
function endWithoutTeardown(): void {
  if (!libcLoaded() || profiled()) return;
  const last = (code: number): void => {
    const listeners = process.listeners('exit');
    if (listeners[listeners.length - 1] !== last) return;
    log.debug({ code }, 'ending without Node\'s teardown');
    exitNow(code);
  };
  process.on('exit', last);
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
