/**
 * Crash safety: iptables-restore and iptables -A killed with SIGKILL at 200
 * randomized points: the crash points along parse, compile, load, store,
 * swap and retire (BPFTABLES_TEST_CRASH_AT, native/crash.ts), and random
 * instants. After each kill the attached hooks enforce the whole old or the
 * whole new ruleset (packets through every hook), iptables-save agrees with
 * them, the next restore succeeds and leaves one generation of pins, and at
 * the end no program, map or link has leaked.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nsExec, sleep } from '../../compat/lab';
import { udpPacket } from '../../compat/probes';
import { BIN, prepareState, requireKernel } from '../helpers/env';
import { familyDirOf, type HookChain, kernelObjectCounts, liveVerdicts, settledObjectCounts, throwawayNamespace } from '../helpers/live';

const KILLS = 200;

function ruleset(d: number): string {
  const fill = Array.from({ length: 300 }, (_, i) => `-A FILL -s 10.${d}.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport ${1000 + i} -j ACCEPT`);
  return ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':FILL - [0:0]', '-A INPUT -j FILL',
    `-A INPUT -p udp -m udp --dport ${7001 + d} -j DROP`, `-A FORWARD -p udp -m udp --dport ${7002 + d} -j DROP`,
    `-A OUTPUT -p udp -m udp --dport ${7003 + d} -j DROP`, ...fill, 'COMMIT', ''].join('\n');
}
const BASES = { A: ruleset(0), B: ruleset(10) } as const;
type Base = keyof typeof BASES;
// appended after every other rule: nothing before it decides udp 7021, so its effect shows
const INSERT = ['-A', 'INPUT', '-p', 'udp', '--dport', '7021', '-j', 'DROP'];
const PROBES: { chain: HookChain; packet: Buffer }[] = ([['INPUT', 7001], ['INPUT', 7011], ['INPUT', 7021], ['FORWARD', 7002], ['FORWARD', 7012], ['OUTPUT', 7003], ['OUTPUT', 7013]] as const)
  .map(([chain, dport]) => ({ chain, packet: udpPacket('10.0.1.2', '10.0.1.1', 5000, dport) }));

// a small deterministic generator, so a failure can be replayed
let seed = 20261201;
const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };

t.test('a killed iptables-restore or iptables leaves the old or the new ruleset, never none or a mix', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'K');
  const run = (cmd: string, args: string[], input?: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof nsExec> =>
    nsExec(ns, path.join(BIN, cmd), args, input, { ...process.env, ...env });
  const verdicts = (): string => liveVerdicts(ns, PROBES);
  const saved = (): string => run('iptables-save', []).stdout;
  const savedState = (): string => {
    const s = saved();
    return `${s.includes('--dport 7001 -j DROP') ? 'A' : ''}${s.includes('--dport 7011 -j DROP') ? 'B' : ''}${s.includes('--dport 7021 -j DROP') ? '+' : ''}`;
  };
  const pointsOf = (cmd: string, args: string[], input?: string): number =>
    (run(cmd, args, input, { BPFTABLES_TEST_CRASH_TRACE: '1' }).stderr.match(/^crash point: /gm) ?? []).length;

  // what each state looks like to packets
  const sig: Record<string, string> = {};
  for (const base of ['A', 'B'] as const) {
    t.equal(run('iptables-restore', [], BASES[base]).status, 0, `restore ${base}`);
    sig[base] = verdicts();
    t.equal(run('iptables', INSERT).status, 0, `append to ${base}`);
    sig[`${base}+`] = verdicts();
  }
  t.equal(new Set(Object.values(sig)).size, 4, `four rulesets, four answers: ${JSON.stringify(sig)}`);
  const restorePoints = pointsOf('iptables-restore', [], BASES.A);
  const insertPoints = pointsOf('iptables', INSERT);
  t.ok(restorePoints >= 15 && insertPoints >= 12, `crash points: restore ${restorePoints}, iptables -A ${insertPoints}`);
  t.equal(run('iptables-restore', [], BASES.A).status, 0, 'back to A');
  sleep(200);
  const baseline = kernelObjectCounts();

  let cur = 'A';
  const stats = { point: 0, instant: 0, old: 0, new: 0 };
  for (let i = 0; i < KILLS; i++) {
    const insert = !cur.endsWith('+') && rand() < 0.4;
    const target = insert ? `${cur}+` : cur.startsWith('A') ? 'B' : 'A';
    const [cmd, args, input] = insert ? ['iptables', INSERT, undefined] as const : ['iptables-restore', [], BASES[target as Base]] as const;
    if (rand() < 0.6) {
      const k = 1 + Math.floor(rand() * (insert ? insertPoints : restorePoints));
      const r = run(cmd, [...args], input, { BPFTABLES_TEST_CRASH_AT: String(k) });
      if (r.signal !== 'SIGKILL') t.fail(`#${i}: ${cmd} was not killed at crash point ${k} (status ${r.status}: ${r.stderr})`);
      stats.point++;
    } else {
      // a random instant: the command runs as usual and is killed from outside
      const child = spawn('ip', ['netns', 'exec', ns, path.join(BIN, cmd), ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end(input ?? '');
      const timer = setTimeout(() => child.kill('SIGKILL'), Math.floor(rand() * 450));
      await new Promise((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      stats.instant++;
    }
    const now = verdicts();
    const state = now === sig[cur] ? cur : now === sig[target] ? target : undefined;
    if (!state) { t.fail(`#${i}: ${cmd} killed: the hooks answer ${now}, neither ${cur} (${sig[cur]}) nor ${target} (${sig[target]})`); break; }
    stats[state === cur ? 'old' : 'new']++;
    const readBack = savedState();
    if (readBack !== state) t.fail(`#${i}: iptables-save shows ${readBack}, the hooks enforce ${state}`);
    // the next command works and clears the debris
    const next: Base = rand() < 0.5 ? 'A' : 'B';
    const r = run('iptables-restore', [], BASES[next]);
    if (r.status !== 0) { t.fail(`#${i}: the next restore failed: ${r.stderr}`); break; }
    if (verdicts() !== sig[next]) t.fail(`#${i}: after the next restore the hooks do not enforce ${next}`);
    const gens = new Set(fs.readdirSync(familyDirOf(ns)).filter((f) => /^g[01]_/.test(f)).map((f) => f[1]));
    if (gens.size !== 1) t.fail(`#${i}: pins of both generations are left: ${fs.readdirSync(familyDirOf(ns)).join(' ')}`);
    cur = next;
  }
  t.pass(`${KILLS} kills (${stats.point} at crash points, ${stats.instant} at random instants): the old ruleset in force after ${stats.old}, the new after ${stats.new}`);
  t.ok(stats.old > 20 && stats.new > 20, 'both outcomes were reached');
  if (cur !== 'A') run('iptables-restore', [], BASES.A);
  t.equal(settledObjectCounts(baseline), baseline, 'no program, map or link leaked');
});
