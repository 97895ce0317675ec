/**
 * A signal pending while the verifier runs makes BPF_PROG_LOAD give up with
 * EAGAIN. bpftables holds signals off around program loads, so a restore
 * succeeds even under a storm of them: here a sampling profiler's SIGPROF
 * every 10 microseconds (without the hold, such a restore failed with
 * "errno 11" nearly every time).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nsExec } from '../compat/lab';
import { BIN, prepareState, requireKernel, tempDir } from './helpers/env';
import { throwawayNamespace } from './helpers/live';

t.test('restores load their programs under a signal storm', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'sig');
  const dir = tempDir(t, 'bpft-sig-');
  const file = path.join(dir, 'rules');
  // general rules (no map lookups): a program the verifier takes a while over
  const rules = Array.from({ length: 300 }, (_, i) => `-A INPUT -p tcp -m tcp ! --sport ${1 + i}:${2 + i} --dport ${1 + i} -m ttl --ttl-gt ${i % 200} -j DROP`);
  fs.writeFileSync(file, ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...rules, 'COMMIT', ''].join('\n'));
  for (let i = 0; i < 3; i++) {
    const r = nsExec(ns, process.execPath, ['--cpu-prof', '--cpu-prof-interval', '10', `--cpu-prof-dir=${dir}`, path.join(BIN, 'iptables-restore'), file]);
    t.equal(r.status, 0, `restore ${i + 1} under SIGPROF every 10 us succeeds${r.status ? `: ${r.stderr}` : ''}`);
  }
  const saved = nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout;
  t.equal(saved.split('\n').filter((l) => l.startsWith('-A INPUT')).length, 300, 'and the ruleset is in force');
});
