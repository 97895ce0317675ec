/**
 * Whether this machine can run kernel tests (root, BPF, netns, the oracle
 * tools). Elsewhere such tests skip with a reason; under CI=true a missing
 * capability is a failure, never a skip.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// tap hands each test process a NODE_OPTIONS that loads its process-info hook; the commands a
// test runs would each load it too (100 ms apiece) and be timed with it: they run without
if (process.env.NODE_OPTIONS?.includes('@tapjs/processinfo')) delete process.env.NODE_OPTIONS;

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(REPO, 'bin');
/** A fresh directory under the system's temporary one (its name starts with `prefix`), removed at teardown. */
export function tempDir(t: { teardown: (fn: () => void) => unknown }, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const SHARED = path.resolve(REPO, '..', 'shared', 'conformance');

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

export function kernelProblem(needs: string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!fs.existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
  for (const c of ['ip', ...needs]) if (!has(c)) return `needs ${c}`;
  return undefined;
}

type Tap = { skip: (...a: any[]) => unknown; fail: (...a: any[]) => unknown }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** True when the test may proceed; otherwise skips (or, under CI, fails) with the reason. */
export function requireKernel(t: Tap, needs: string[] = []): boolean {
  const problem = kernelProblem(needs);
  if (!problem) return true;
  if (process.env.CI === 'true') t.fail(`kernel test cannot run under CI: ${problem}`);
  else t.skip(`kernel test skipped: ${problem}`);
  return false;
}

/**
 * True when every tool a test runs (an oracle, a Debian utility) is
 * installed; otherwise skips with what is missing, or under CI=true, where
 * .ci/run installs them, fails: a comparison that cannot run there is a gap.
 */
export function requireTools(t: Tap, tools: string[], from: string): boolean {
  const missing = tools.filter((c) => !has(c));
  if (!missing.length) return true;
  const why = `${missing.join(', ')} (${from}) not installed`;
  if (process.env.CI === 'true') t.fail(`cannot run under CI: ${why}`);
  else t.skip(why);
  return false;
}

export function sharedDir(sub: string): string | undefined {
  const d = path.join(SHARED, sub);
  return fs.existsSync(d) ? d : undefined;
}

/** Mount the state filesystem from the root mount namespace, as the boot unit would. */
export function prepareState(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('../../native/statefs') as typeof import('../../native/statefs')).ensureStateRoot();
}
