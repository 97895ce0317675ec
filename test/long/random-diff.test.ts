/**
 * The random differential runs of test/diff-random and test/diff-random-nft
 * over many more seeds: generated IPv4 and IPv6 filter tables, 64 packets
 * each, through ip[6]tables-legacy and bpftables (test/helpers/random-diff);
 * generated inet tables, 48 IPv4 and 48 IPv6 packets each, through the
 * kernel's nft and bpftables' nft (test/helpers/random-nft).
 */
import t from 'tap';
import { DiffPair } from '../helpers/differential';
import { prepareState, requireKernel } from '../helpers/env';
import { runRandomDiff } from '../helpers/random-diff';
import { runRandomNftDiff } from '../helpers/random-nft';

for (const [family, count] of [[4, 200], [6, 160]] as const) {
  const ip = family === 6 ? 'ip6tables' : 'iptables';
  t.test(`random ${family === 6 ? 'IPv6' : 'IPv4'} filter tables and packets, ${count} seeds: bpftables and ${ip}-legacy agree`, async (t) => {
    if (!requireKernel(t, [`${ip}-legacy-restore`])) return;
    prepareState();
    const pair = new DiffPair(family);
    t.teardown(() => pair.destroy());
    // the seeds after the main suite's 12
    const seeds = Array.from({ length: count }, (_, i) => i + 13);
    const { packets, delivered, refused } = runRandomDiff(t, pair, seeds, 64);
    t.ok(packets >= count * 64 * 0.9, `${packets} packets compared (${delivered} delivered by the kernel), ${refused} of ${seeds.length} tables refused by both`);
  });
}

t.test("random nft tables and packets, 150 seeds: bpftables' nft and the kernel's agree", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  // the seeds after the main suite's 10
  const seeds = Array.from({ length: 150 }, (_, i) => i + 11);
  const { packets, delivered, refused } = runRandomNftDiff(t, pair, seeds, 48);
  t.ok(packets >= 150 * 96 * 0.9, `${packets} packets compared (${delivered} delivered by the kernel), ${refused} of ${seeds.length} tables refused by both`);
});
