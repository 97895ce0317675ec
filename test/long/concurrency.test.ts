/**
 * Concurrency: 8 writers each append 100 rules with `iptables -w -A` at the
 * same time while two readers keep listing (iptables-save, -S, -L -n).
 * No rule is lost, each writer's rules keep their order, every listing a
 * reader sees is a whole ruleset (each writer's rules a gap-free prefix of
 * what it wrote, never fewer than the reader saw before), and the final
 * rules are enforced.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { nsExec } from '../../compat/lab';
import { udpPacket } from '../../compat/probes';
import { BIN, prepareState, requireKernel } from '../helpers/env';
import { liveVerdicts, throwawayNamespace } from '../helpers/live';

const WRITERS = 8, EACH = 100;

function runAsync(ns: string, cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, path.join(BIN, cmd), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The rules of each writer a listing shows, by the source address 10.<writer>.<i>.1 (in the listed order). */
function perWriter(text: string): number[][] {
  const seen: number[][] = Array.from({ length: WRITERS }, () => []);
  for (const m of text.matchAll(/10\.(\d+)\.(\d+)\.1\b/g)) seen[Number(m[1])]?.push(Number(m[2]));
  return seen;
}

t.test('8 concurrent writers of 100 rules each: none lost, readers always see a whole ruleset', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'W');
  t.equal(nsExec(ns, path.join(BIN, 'iptables-restore'), [], '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n').status, 0, 'an empty table');

  let writing = true;
  const failures: string[] = [];
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; i < EACH; i++) {
      const r = await runAsync(ns, 'iptables', ['-w', '-A', 'INPUT', '-s', `10.${w}.${i}.1`, '-p', 'udp', '-j', 'DROP']);
      if (r.status !== 0) failures.push(`writer ${w} rule ${i}: exit ${r.status}: ${r.stderr}`);
    }
  };
  const reads = { count: 0, bad: [] as string[] };
  const reader = async (id: number): Promise<void> => {
    const last = new Array<number>(WRITERS).fill(0);
    for (let k = 0; writing; k++) {
      const kind = (['iptables-save', '-S', '-L'] as const)[(k + id) % 3];
      const r = kind === 'iptables-save' ? await runAsync(ns, 'iptables-save', []) : await runAsync(ns, 'iptables', kind === '-S' ? ['-S'] : ['-L', 'INPUT', '-n']);
      reads.count++;
      const whole = r.status === 0 && (kind === 'iptables-save' ? /^# Generated[^]*\n\*filter\n:INPUT ACCEPT[^]*\nCOMMIT\n# Completed/.test(r.stdout)
        : kind === '-S' ? /^-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n/.test(r.stdout) : /^Chain INPUT \(policy ACCEPT\)\ntarget/.test(r.stdout));
      if (!whole) { reads.bad.push(`${kind}: exit ${r.status}: ${r.stdout.slice(0, 200)}${r.stderr}`); continue; }
      perWriter(r.stdout).forEach((got, w) => {
        if (got.some((x, j) => x !== j)) reads.bad.push(`${kind}: writer ${w}'s rules with a gap or out of order: ${got.join(',')}`);
        if (got.length < last[w]!) reads.bad.push(`${kind}: writer ${w} went back from ${last[w]} to ${got.length} rules`);
        last[w] = got.length;
      });
    }
  };
  const started = Date.now();
  const readers = [reader(0), reader(1)];
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  writing = false;
  await Promise.all(readers);
  t.same(failures, [], `every iptables -w -A succeeded (${WRITERS * EACH} in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  t.same(reads.bad.slice(0, 5), [], `${reads.count} listings during the writes, each a whole ruleset`);
  t.ok(reads.count >= 30, 'the readers listed many times while writers ran');

  const final = perWriter(nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout);
  t.same(final, Array.from({ length: WRITERS }, () => Array.from({ length: EACH }, (_, i) => i)), `iptables-save holds all ${WRITERS * EACH} rules, each writer's in its order`);
  const probes = [[0, 0], [3, 57], [7, 99]].map(([w, i]) => ({ chain: 'INPUT' as const, packet: udpPacket(`10.${w}.${i}.1`, '10.0.1.1', 5000, 53) }));
  t.equal(liveVerdicts(ns, [...probes, { chain: 'INPUT', packet: udpPacket('10.9.0.1', '10.0.1.1', 5000, 53) }]), 'DDDA', 'and enforced: sources written by three writers dropped, another accepted');
});
