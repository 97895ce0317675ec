/**
 * Random nft tables and packets through the kernel (test/helpers/random-nft):
 * the kernel's nft and bpftables' nft load the same generated inet table, and
 * the same generated IPv4 and IPv6 packets fare alike in both. The long run
 * (test/long/random-diff) goes through many more seeds.
 */
import t from 'tap';
import { DiffPair } from './helpers/differential';
import { prepareState, requireKernel } from './helpers/env';
import { runRandomNftDiff } from './helpers/random-nft';

t.test("random nft tables and packets: bpftables' nft and the kernel's agree", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const pair = new DiffPair();
  t.teardown(() => pair.destroy());
  // the long run takes the seeds after these
  const seeds = Array.from({ length: 10 }, (_, i) => i + 1);
  const { packets, delivered, refused } = runRandomNftDiff(t, pair, seeds, 40);
  t.ok(packets >= 640, `${packets} packets compared (${delivered} delivered by the kernel), ${refused} of ${seeds.length} tables refused by both`);
  t.ok(delivered > packets / 10 && delivered < packets * 0.9, 'the tables let some packets through and drop others');
});
