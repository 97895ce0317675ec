/**
 * Random nft tables and packets through the kernel (test/helpers/random-nft):
 * the kernel's nft and bpftables' nft load the same generated inet table, and
 * the same generated IPv4 and IPv6 packets fare alike in both. The long run
 * (test/long/random-diff) goes through many more seeds.
 */
import { randomDiffTest } from './helpers/random-run';

// the long run (test/long/random-diff) takes the seeds after these
randomDiffTest("random nft tables and packets: bpftables' nft and the kernel's agree", { kind: 'nft', first: 1, count: 10, probes: 40, minPackets: 640, mixed: true });
