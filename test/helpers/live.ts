/**
 * Packets through the hook programs a namespace has attached right now: each
 * pinned link's program (the dispatcher, which tail-calls the active
 * generation) run with BPF_PROG_TEST_RUN. What it answers is what the kernel
 * does to such a packet at that hook at that moment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ip, nsExec, sleep, uniqueName } from '../../compat/lab';
import { allIds, close, linkInfo, NFPROTO_IPV4, NFPROTO_IPV6, objGet, progFdById, testRunNf } from '../../native/bpf';
import { stateRoot } from '../../native/statefs';
import { BIN } from './env';

export type HookChain = 'INPUT' | 'FORWARD' | 'OUTPUT';
const HOOKNUM: Record<HookChain, number> = { INPUT: 1, FORWARD: 2, OUTPUT: 3 };

/** The family directory of namespace `ns` (named as `ip netns` names it). */
export function familyDirOf(ns: string, family: 4 | 6 = 4): string {
  return path.join(stateRoot(), `net-${fs.statSync(`/run/netns/${ns}`).ino}`, `ipv${family}`);
}

/** 'A' (accepted), 'D' (dropped) or '-' (no hook attached) for each probe, in order. */
export function liveVerdicts(ns: string, probes: { chain: HookChain; packet: Buffer }[], family: 4 | 6 = 4): string {
  const dir = familyDirOf(ns, family);
  return probes.map(({ chain, packet }) => {
    const link = objGet(path.join(dir, `link_${chain}`));
    if (link < 0) return '-';
    try {
      const prog = progFdById(linkInfo(link).progId);
      try { return testRunNf(prog, packet, HOOKNUM[chain], family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4).retval === 1 ? 'A' : 'D'; } finally { close(prog); }
    } finally { close(link); }
  }).join('');
}

/**
 * A fresh network namespace for one test, named `tag` plus a unique suffix;
 * at teardown its rulesets are flushed (so its pins go) and it is deleted.
 */
export function throwawayNamespace(t: { teardown: (fn: () => void) => unknown }, tag: string): string {
  const ns = uniqueName(tag);
  ip('netns', 'add', ns);
  t.teardown(() => { nsExec(ns, path.join(BIN, 'bpftables'), ['flush']); try { ip('netns', 'del', ns); } catch { /* gone */ } });
  return ns;
}

/** How many programs, maps and links the kernel holds (all of them, as a comparable string). */
export const kernelObjectCounts = (): string => JSON.stringify([allIds('prog').length, allIds('map').length, allIds('link').length]);

/** The kernel frees programs and maps after an RCU grace period: wait (up to 5 s) for the counts to settle at `want`; the counts then. */
export function settledObjectCounts(want: string): string {
  let now = kernelObjectCounts();
  for (let i = 0; i < 100 && now !== want; i++) { sleep(50); now = kernelObjectCounts(); }
  return now;
}

/** The counts once they stop changing (objects freed by earlier tests go after a grace period): unchanged for 300 ms, within 5 s. */
export function quietObjectCounts(): string {
  let last = kernelObjectCounts();
  for (let i = 0; i < 16; i++) {
    sleep(300);
    const now = kernelObjectCounts();
    if (now === last) return now;
    last = now;
  }
  return last;
}
