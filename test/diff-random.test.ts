/**
 * Random tables and packets through the kernel (test/helpers/random-diff):
 * ip[6]tables-legacy and bpftables load the same generated filter table, and
 * the same generated packets fare alike in both. The long run
 * (test/long/random-diff) goes through many more seeds.
 */
import t from 'tap';
import { DiffPair } from './helpers/differential';
import { prepareState, requireKernel } from './helpers/env';
import { runRandomDiff } from './helpers/random-diff';

for (const family of [4, 6] as const) {
  const ip = family === 6 ? 'ip6tables' : 'iptables';
  t.test(`random ${family === 6 ? 'IPv6' : 'IPv4'} filter tables and packets: bpftables and ${ip}-legacy agree`, async (t) => {
    if (!requireKernel(t, [`${ip}-legacy-restore`])) return;
    prepareState();
    const pair = new DiffPair(family);
    t.teardown(() => pair.destroy());
    // the long run takes the seeds after these
    const seeds = Array.from({ length: 12 }, (_, i) => i + 1);
    const { packets, delivered, refused } = runRandomDiff(t, pair, seeds, 48);
    t.ok(packets >= 480, `${packets} packets compared (${delivered} delivered by the kernel), ${refused} of ${seeds.length} tables refused by both`);
    t.ok(delivered > packets / 10 && delivered < packets * 0.9, 'the tables let some packets through and drop others');
  });
}
