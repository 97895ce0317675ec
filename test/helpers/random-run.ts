/**
 * One random differential test (test/helpers/random-diff, random-nft) as the
 * main and long suites run it: a pair of routers, `count` seeds from
 * `first`, `probes` packets per family and table; at least `minPackets`
 * compared, and with `mixed` some delivered and some dropped.
 */
import t from 'tap';
import { DiffPair } from './differential';
import { prepareState, requireKernel } from './env';
import { runRandomDiff } from './random-diff';
import { runRandomNftDiff } from './random-nft';

export interface RandomRun { kind: 4 | 6 | 'nft'; first: number; count: number; probes: number; minPackets: number; mixed?: boolean }

export function randomDiffTest(name: string, o: RandomRun): void {
  const needs = o.kind === 'nft' ? 'nft' : `${o.kind === 6 ? 'ip6tables' : 'iptables'}-legacy-restore`;
  t.test(name, async (t) => {
    if (!requireKernel(t, [needs])) return;
    prepareState();
    const pair = new DiffPair(o.kind === 6 ? 6 : 4);
    t.teardown(() => pair.destroy());
    const seeds = Array.from({ length: o.count }, (_, i) => i + o.first);
    const { packets, delivered, refused } = (o.kind === 'nft' ? runRandomNftDiff : runRandomDiff)(t, pair, seeds, o.probes);
    t.ok(packets >= o.minPackets, `${packets} packets compared (${delivered} delivered by the kernel), ${refused} of ${seeds.length} tables refused by both`);
    if (o.mixed) t.ok(delivered > packets / 10 && delivered < packets * 0.9, 'the tables let some packets through and drop others');
  });
}
