/**
 * Random tables and packets through the kernel (test/helpers/random-diff):
 * ip[6]tables-legacy and bpftables load the same generated filter table, and
 * the same generated packets fare alike in both. The long run
 * (test/long/random-diff) goes through many more seeds.
 */
import { randomDiffTest } from './helpers/random-run';

// the long run (test/long/random-diff) takes the seeds after these
for (const family of [4, 6] as const) {
  randomDiffTest(`random ${family === 6 ? 'IPv6' : 'IPv4'} filter tables and packets: bpftables and ${family === 6 ? 'ip6tables' : 'iptables'}-legacy agree`,
    { kind: family, first: 1, count: 12, probes: 48, minPackets: 480, mixed: true });
}
