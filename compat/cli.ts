/**
 * The command boundary: turns error values into iptables-style messages and
 * exit codes, and checks the preconditions every command shares.
 */
import { BpftablesError } from '../xlate/errors';
import { SysError } from '../native/libc';
import { StateFsError } from '../native/statefs';
import { log, setVerbose } from './log';

export const VERSION = 'v1.8.11 (bpftables)';

export class Exit extends Error { constructor(readonly code: number) { super(`exit ${code}`); } }

export interface Io { out: (s: string) => void; err: (s: string) => void }
export const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export function requireRoot(prog: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new BpftablesError(`${prog}: must be run as root (it loads BPF programs and changes the firewall)`, 4);
  }
}

/** Run a command main; never returns normally into the caller's error paths. */
export function runMain(prog: string, main: (argv: string[], io: Io) => number | void, argv = process.argv.slice(2)): void {
  if (argv.includes('--verbose') || process.env.BPFTABLES_LOG === 'debug') setVerbose();
  let code = 0;
  try {
    code = main(argv, stdio) ?? 0;
  } catch (e) {
    code = reportError(prog, e, stdio);
  }
  process.exitCode = code;
}

export function reportError(prog: string, e: unknown, io: Io): number {
  if (e instanceof Exit) return e.code;
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
