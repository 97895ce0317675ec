/**
 * A test hook for the crash-safety tests: with BPFTABLES_TEST_CRASH_AT=N the
 * process kills itself with SIGKILL (as the OOM killer or a power cut would
 * end it: no cleanup runs) at the Nth crash point it passes; with
 * BPFTABLES_TEST_CRASH_TRACE set it names each point on stderr, so a test
 * can count them. Never set either otherwise.
 */
import fs from 'node:fs';

let left = Number(process.env.BPFTABLES_TEST_CRASH_AT ?? 0) || 0;
const trace = process.env.BPFTABLES_TEST_CRASH_TRACE !== undefined;

/** A place where a crash must leave either the old or the new ruleset in force. */
export function crashPoint(name: string): void {
  if (trace) fs.writeSync(2, `crash point: ${name}\n`);
  if (left > 0 && --left === 0) process.kill(process.pid, 'SIGKILL');
}
