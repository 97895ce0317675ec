/**
 * V8's optimizing compiler (TurboFan) for the commands that have a lot to do.
 *
 * The commands start with it off (`--no-turbofan` in bin/*). A command over a
 * few thousand rules makes V8 compile its hot functions (the scanner, the
 * run finder, the map builders) with TurboFan on background threads: about
 * 180 ms of compiling for a 10k-rule restore, for code that is mostly ready
 * when the work is done, while the threads take the machine's CPUs from the
 * command (2 vCPUs on the README's machine). Without it, restores of 1k and
 * 10k rules took 15-30 ms less; with 100k rules, 95 ms more (optimized code
 * pays for itself from about 25k rules). So a command turns TurboFan on as
 * soon as it knows its input is large, before the work starts; and the
 * long-running log daemon always does.
 *
 * Only a process started with `--no-turbofan` on its command line (ours)
 * changes the flag: nothing is changed when node runs our modules otherwise
 * (tests, the benchmark), nor when the user's NODE_OPTIONS chose how V8
 * compiles (--jitless, --no-opt, --no-turbofan, --turbofan).
 */
import { log } from './log';

/**
 * The size of a command's input from which its work pays for TurboFan, by
 * kind of input (the work a byte costs differs a lot between front ends).
 * Measured on the README's machine, A/B against TurboFan always on.
 */
export const LARGE = {
  /** iptables-restore: 20k rules (690 KB) 30 ms faster without, 30k (1 MB) 15 ms faster with */
  restore: 768 * 1024,
  /** iptables-restore-translate, bpftables check and migrate: 10k rules (340 KB) alike, 20k (690 KB) 70 ms faster with */
  translate: 256 * 1024,
  /** nft -f: 3k rules (80 KB) 12 ms faster without, 10k (270 KB) 180 ms faster with */
  nft: 128 * 1024,
  /** ipset restore: 1k elements (18 KB) already 17 ms faster with (each line costs a lot) */
  ipset: 8 * 1024,
  /** A stored iptables or nft ruleset read back (iptables-save, -L, nft list): 10k blocklist rules (90 KB) alike, 20k (180 KB) faster with */
  stored: 128 * 1024,
} as const;

/** Does a process with these node arguments and NODE_OPTIONS leave TurboFan to us? */
export function ownsTiering(execArgv: readonly string[], nodeOptions: string): boolean {
  return execArgv.includes('--no-turbofan') && !/--(jitless|no-opt|(no-)?turbofan|max-opt)\b/.test(nodeOptions);
}

let optimizing = false;

/** Turn TurboFan on for work of `bytes` when that reaches `large` (`why` for the debug log). */
export function expectWork(bytes: number, large: number, why: string): void {
  if (optimizing || bytes < large || !ownsTiering(process.execArgv, process.env.NODE_OPTIONS ?? '')) return;
  optimizing = true;
  setV8Flags('--turbofan');
  log.debug({ bytes, why }, 'optimizing compiler on');
}

type V8Binding = { setFlagsFromString?: (flags: string) => void };

/**
 * v8.setFlagsFromString, without loading node:v8: that module loads node's
 * streams, 7-11 ms here, as our flags make V8 refuse node's own code cache.
 * It calls node's v8 binding, which process.binding still gives (its
 * deprecation warning, meant for modules that read node's internals, kept
 * quiet: this is the call node:v8 makes); node:v8 when it does not.
 */
function setV8Flags(flags: string): void {
  const quiet = process.noDeprecation;
  let binding: V8Binding | undefined;
  try {
    process.noDeprecation = true;
    binding = (process as unknown as { binding?: (name: string) => V8Binding }).binding?.('v8');
  } catch { /* gone from this node */ } finally { process.noDeprecation = quiet; }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (typeof binding?.setFlagsFromString === 'function') binding.setFlagsFromString(flags); else (require('node:v8') as typeof import('node:v8')).setFlagsFromString(flags);
}

/** Has this process turned TurboFan on? */
export const optimizingOn = (): boolean => optimizing;
