/**
 * nft's named address sets against the kernel's nft, with packets: the same
 * file loaded with the real `nft -f` in one router namespace and with
 * bpftables' in another; sets with and without `flags interval`, ranges
 * and prefixes, `!=`, an empty set, source and destination, IPv4 and IPv6;
 * then elements added and deleted on the live ruleset in both; then a set
 * of 100000 addresses (more keys than a rule may make of an anonymous set:
 * a named set is one lookup in a map of its elements).
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { nsExec } from '../compat/lab';
import { udp6Packet, udpPacket } from '../compat/probes';
import { checkOutcomes, DiffPair, type ProbeSpec } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

const RULES = `table inet filter {
	set one4 { type ipv4_addr; elements = { 10.0.1.2, 10.0.1.50 } }
	set nets4 { type ipv4_addr; flags interval; elements = { 10.0.1.0/30, 10.0.1.100-10.0.1.120, 10.0.1.77 } }
	set none4 { type ipv4_addr; }
	set dst4 { type ipv4_addr; flags interval; elements = { 10.0.2.0/24 } }
	set one6 { type ipv6_addr; elements = { fd00:1::2, fd00:1::99 } }
	set nets6 { type ipv6_addr; flags interval; elements = { fd00:1::/126, fd00:1::1:0-fd00:1::1:ff } }
	set dst6 { type ipv6_addr; flags interval; elements = { fd00:2::/64 } }
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr @one4 udp dport 7001 drop
		ip saddr @nets4 udp dport 7002 drop
		ip saddr != @one4 udp dport 7003 drop
		ip saddr @none4 udp dport 7004 drop
		ip saddr != @none4 udp dport 7005 drop
		ip daddr @dst4 udp dport 7006 drop
		ip6 saddr @one6 udp dport 7001 drop
		ip6 saddr @nets6 udp dport 7002 drop
		ip6 saddr != @one6 udp dport 7003 drop
		ip6 daddr @dst6 udp dport 7006 drop
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr @dst4 udp dport 7006 drop
		ip6 daddr @dst6 udp dport 7006 drop
		ip saddr @nets4 ip daddr != @none4 udp dport 7007 drop
	}
}
`;

const R = '10.0.1.1', S = '10.0.2.2', R6 = 'fd00:1::1', S6 = 'fd00:2::2';
const in4 = (name: string, src: string, dport: number, expect: boolean): ProbeSpec => ({ name, where: 'input', packet: udpPacket(src, R, 5000, dport), expect });
const in6 = (name: string, src: string, dport: number, expect: boolean): ProbeSpec => ({ name, where: 'input', packet: udp6Packet(src, R6, 5000, dport), expect });

const PROBES4: ProbeSpec[] = [
  in4('an address of a plain set', '10.0.1.2', 7001, false), in4('another address of it', '10.0.1.50', 7001, false),
  in4('an address not in it', '10.0.1.51', 7001, true),
  in4('in the prefix of an interval set', '10.0.1.3', 7002, false), in4('just past the prefix', '10.0.1.4', 7002, true),
  in4('the first of a range', '10.0.1.100', 7002, false), in4('inside the range', '10.0.1.111', 7002, false), in4('the last of the range', '10.0.1.120', 7002, false),
  in4('just past the range', '10.0.1.121', 7002, true), in4('just before the range', '10.0.1.99', 7002, true), in4('a single address of an interval set', '10.0.1.77', 7002, false),
  in4('!= a set, the address in it', '10.0.1.2', 7003, true), in4('!= a set, the address not in it', '10.0.1.9', 7003, false),
  in4('an empty set', '10.0.1.2', 7004, true), in4('!= an empty set', '10.0.1.2', 7005, false),
  in4('the destination, not in the set', '10.0.1.2', 7006, true),
  { name: 'fwd: the destination in the set', where: 'forward', packet: udpPacket('10.0.1.2', S, 5000, 7006), expect: false },
  { name: 'fwd: two sets, != an empty one', where: 'forward', packet: udpPacket('10.0.1.110', S, 5000, 7007), expect: false },
  { name: 'fwd: two sets, the source not in the first', where: 'forward', packet: udpPacket('10.0.1.9', S, 5000, 7007), expect: true },
];

const PROBES6: ProbeSpec[] = [
  in6('an address of a plain set', 'fd00:1::2', 7001, false), in6('another address of it', 'fd00:1::99', 7001, false), in6('an address not in it', 'fd00:1::98', 7001, true),
  in6('in the prefix of an interval set', 'fd00:1::3', 7002, false), in6('just past the prefix', 'fd00:1::4', 7002, true),
  in6('the first of a range', 'fd00:1::1:0', 7002, false), in6('inside the range', 'fd00:1::1:80', 7002, false), in6('the last of the range', 'fd00:1::1:ff', 7002, false),
  in6('just past the range', 'fd00:1::1:100', 7002, true),
  in6('!= a set, the address in it', 'fd00:1::2', 7003, true), in6('!= a set, the address not in it', 'fd00:1::9', 7003, false),
  in6('the destination, not in the set', 'fd00:1::2', 7006, true),
  { name: 'fwd: the destination in the set', where: 'forward', packet: udp6Packet('fd00:1::2', S6, 5000, 7006), expect: false },
];

/** Run the same nft arguments in both routers: the kernel's nft and ours. */
function both(t: Test, pair: DiffPair, args: string[], input?: string): void {
  const real = nsExec(pair.legacy.router, 'nft', args, input);
  t.equal(real.status, 0, `the kernel's nft: nft ${args.join(' ')} ${real.stderr}`);
  const ours = nsExec(pair.ours.router, path.join(BIN, 'nft'), args, input);
  t.equal(ours.status, 0, `bpftables: nft ${args.join(' ')} ${ours.stderr}`);
}

for (const family of [4, 6] as const) {
  t.test(`named address sets filter like the kernel's nft's (IPv${family})`, async (t) => {
    if (!requireKernel(t, ['nft'])) return;
    prepareState();
    const pair = new DiffPair(family);
    t.teardown(() => pair.destroy());
    both(t, pair, ['-f', '-'], RULES);
    checkOutcomes(t, pair.probe(family === 4 ? PROBES4 : PROBES6), 'nft');
    // elements change on the live ruleset: the rules that name the set follow
    const [set, added, gone] = family === 4 ? ['one4', '10.0.1.51', '10.0.1.2'] : ['one6', 'fd00:1::98', 'fd00:1::2'];
    both(t, pair, ['add', 'element', 'inet', 'filter', set, `{ ${added} }`]);
    both(t, pair, ['delete', 'element', 'inet', 'filter', set, `{ ${gone} }`]);
    const probe = family === 4 ? in4 : in6;
    checkOutcomes(t, pair.probe([
      probe('an address added to the set', added, 7001, false), probe('an address deleted from it', gone, 7001, true),
      probe('!= the set, an address deleted from it', gone, 7003, false),
    ]), 'nft');
  });
}

t.test('a named set of 100000 addresses', async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  // 10.1.0.0 up, every other address (none adjacent: nft would keep them as they are either way)
  const elements = Array.from({ length: 100000 }, (_, i) => `10.${1 + (i >> 15)}.${(i >> 7) & 0xff}.${(i & 0x7f) * 2}`);
  elements.push('10.0.1.2');
  const text = `table ip big {\n\tset bl { type ipv4_addr; elements = { ${elements.join(', ')} } }\n\tchain input { type filter hook input priority 0; policy accept; ip saddr @bl udp dport 7001 drop; }\n}\n`;
  both(t, pair, ['-f', '-'], text);
  checkOutcomes(t, pair.probe([
    in4('a listed address', '10.0.1.2', 7001, false), in4('an address not listed', '10.0.1.3', 7001, true),
  ]), 'nft');
});
