/**
 * Packets through the hook programs a namespace has attached right now: each
 * pinned link's program (the dispatcher, which tail-calls the active
 * generation) run with BPF_PROG_TEST_RUN. What it answers is what the kernel
 * does to such a packet at that hook at that moment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { close, linkInfo, NFPROTO_IPV4, NFPROTO_IPV6, objGet, progFdById, testRunNf } from '../../native/bpf';
import { stateRoot } from '../../native/statefs';

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
