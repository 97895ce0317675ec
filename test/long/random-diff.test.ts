/**
 * The random differential runs of test/diff-random and test/diff-random-nft
 * over many more seeds: generated IPv4 and IPv6 filter tables, 64 packets
 * each, through ip[6]tables-legacy and bpftables (test/helpers/random-diff);
 * generated inet tables, 48 IPv4 and 48 IPv6 packets each, through the
 * kernel's nft and bpftables' nft (test/helpers/random-nft).
 */
import { randomDiffTest } from '../helpers/random-run';

// the seeds after the main suite's (12 per family, 10 nft)
for (const [family, count] of [[4, 200], [6, 160]] as const) {
  randomDiffTest(`random ${family === 6 ? 'IPv6' : 'IPv4'} filter tables and packets, ${count} seeds: bpftables and ${family === 6 ? 'ip6tables' : 'iptables'}-legacy agree`,
    { kind: family, first: 13, count, probes: 64, minPackets: count * 64 * 0.9 });
}
randomDiffTest("random nft tables and packets, 150 seeds: bpftables' nft and the kernel's agree", { kind: 'nft', first: 11, count: 150, probes: 48, minPackets: 150 * 96 * 0.9 });
