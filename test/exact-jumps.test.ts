/**
 * Exact-match runs of rules that jump (the kube-proxy shape: -d VIP -p tcp
 * --dport P -j SVC): compiled to one search (or hash lookup) and a dispatch to the chains,
 * with the verdicts and every counter of the reference interpreter, for
 * chains that accept, drop, return (on after the run), jump on, or goto;
 * a repeated key ends a run with jumps (first match, then the next rule
 * with that key, as the kernel does).
 */
import t from 'tap';
import { TCP, tcpPacket } from '../compat/probes';
import { checkSeed } from './helpers/verdict-model';
import { prepareState, requireKernel } from './helpers/env';

const VIPS = 60;
const vip = (i: number): string => `172.16.${i >> 8}.${i & 255}`;
const port = (i: number): number => 1000 + (i % 7);

function ruleset(): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  const chains = ['SVC-A', 'SVC-D', 'SVC-R', 'SVC-J', 'SVC-G', 'SEP'];
  for (const c of chains) lines.push(`:${c} - [0:0]`);
  for (const chain of ['INPUT', 'FORWARD']) {
    for (let i = 0; i < VIPS; i++) lines.push(`-A ${chain} -d ${vip(i)}/32 -p tcp -m tcp --dport ${port(i)} -j ${chains[i % 5]}`);
    // the same key again: in a run with jumps it must start a new run
    lines.push(`-A ${chain} -d ${vip(2)}/32 -p tcp -m tcp --dport ${port(2)} -j DROP`);
    for (let i = VIPS; i < VIPS + 20; i++) lines.push(`-A ${chain} -d ${vip(i)}/32 -p tcp -m tcp --dport ${port(i)} -j ${i % 2 ? 'ACCEPT' : 'SVC-R'}`);
    lines.push(`-A ${chain} -p tcp -m tcp --dport 1003 -j DROP`);
  }
  lines.push('-A SVC-A -j ACCEPT', '-A SVC-D -j DROP', '-A SVC-R -p tcp -m tcp --sport 1:1023 -j DROP', '-A SVC-R -j RETURN',
    '-A SVC-J -j SEP', '-A SEP -p tcp -m tcp --sport 7 -j ACCEPT', '-A SVC-G -g SEP', 'COMMIT', '');
  return lines.join('\n');
}

t.test('runs of jump rules agree with the interpreter', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  let n = 0;
  const { compiled, tabled, hashed } = checkSeed(t, {
    seed: 1, text: ruleset(), family: 4, perHook: 1500,
    packet: () => {
      n++;
      const i = (n * 7919) % (VIPS + 25);
      return tcpPacket('10.0.0.1', vip(i), { sport: [7, 80, 5000][n % 3]!, dport: n % 11 === 0 ? 999 : port(i), flags: TCP.SYN });
    },
  });
  const notes = (c: typeof compiled): string[] => c.hooks.flatMap((h) => [...h.linked.notes.values()]).filter((x) => x.startsWith('exact-match run'));
  t.ok(notes(compiled).filter((n) => n.endsWith('binary search')).length >= 4, `the jump rules became searches (${notes(compiled).join('; ')})`);
  t.ok(notes(tabled).filter((n) => n.endsWith('a compact table')).length >= 4, `compiled without searches, compact tables (${notes(tabled).join('; ')})`);
  t.ok(notes(hashed).filter((n) => n.endsWith('hash lookup')).length >= 4, `and without tables, hash lookups (${notes(hashed).join('; ')})`);
});
