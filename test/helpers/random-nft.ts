/**
 * Random differential runs of nft rulesets through the kernel: a seeded
 * generator writes an `inet` table (input, forward and output base chains,
 * user chains reached by jump and goto) of rules made from the stateless
 * statements bpftables' nft supports (addresses, prefixes, ranges and
 * anonymous sets; ports with sets, ranges and comparisons; tcp flags; icmp
 * and icmpv6 types and codes; ct state, status and direction; interface
 * names; ttl, hop limit, lengths, dscp; fib types; counters), each rule of
 * one family or of both. The kernel's nft loads it in one router and
 * bpftables' nft in the other; the IPv4 and IPv6 packets of
 * test/helpers/random-diff go through both.
 */
import path from 'node:path';
import type { Test } from 'tap';
import { nsExec } from '../../compat/lab';
import { BIN } from './env';
import type { DiffPair } from './differential';
import { genProbe, genProbe6 } from './random-diff';
import { pickFrom, rng } from './rng';

const V4 = ['10.0.1.2', '10.0.1.1', '10.0.2.1', '10.0.2.2', '198.51.100.7', '10.0.1.77'];
const V6 = ['fd00:1::2', 'fd00:1::1', 'fd00:2::1', 'fd00:2::2', '2001:db8::7', 'fd00:1::77'];
const PORTS = [0, 22, 53, 80, 443, 1023, 1024, 8080, 65535];
const USERS = ['u1', 'u2', 'u3'];

function genNftRule(r: () => number, chain: string, self: number): string {
  const pick = pickFrom(r);
  const ne = (): string => (r() < 0.25 ? '!= ' : '');
  const family = pick([4, 6, 0, 0]);
  const terms: string[] = [];
  const addrs = family === 4 ? V4 : V6;
  const key = family === 4 ? 'ip' : 'ip6';
  const prefix = (a: string): string => (family === 4 ? `${a}/${pick([16, 24, 31])}` : `${a}/${pick([32, 64, 126])}`);
  const addrValue = (): string => {
    const a = pick(addrs);
    switch (pick(['one', 'one', 'prefix', 'range', 'set'])) {
      case 'one': return `${ne()}${a}`;
      case 'prefix': return `${ne()}${prefix(a)}`;
      case 'range': return family === 4 ? `${ne()}10.0.1.0-10.0.1.100` : `${ne()}fd00:1::-fd00:1::ff`;
      default: return `{ ${a}, ${prefix(pick(addrs))} }`;
    }
  };
  if (family === 0 && r() < 0.15) terms.push(`meta nfproto ${pick(['ipv4', 'ipv6'])}`);
  if (family !== 0 && r() < 0.4) terms.push(`${key} saddr ${addrValue()}`);
  if (family !== 0 && r() < 0.3) terms.push(`${key} daddr ${addrValue()}`);
  const proto = pick(['tcp', 'tcp', 'udp', 'udp', 'icmp', 'none', 'none', 'l4']);
  if (proto === 'l4') terms.push(`meta l4proto ${pick(['tcp', 'udp', '{ tcp, udp }', '!= tcp', 'gre', family === 4 ? 'icmp' : 'ipv6-icmp'])}`);
  if (proto === 'tcp' || proto === 'udp') {
    const port = (): string => {
      switch (pick(['one', 'one', 'set', 'range', 'cmp'])) {
        case 'one': return `${ne()}${pick(PORTS)}`;
        case 'set': return `{ ${pick(PORTS)}, ${pick([80, 8000])}, 1000-2000 }`;
        case 'range': return `${ne()}${pick(['1-1023', '1024-65535', '53-80'])}`;
        default: return `${pick(['<', '<=', '>', '>='])} ${pick([1, 53, 1024, 65535])}`;
      }
    };
    const which = pick([proto, proto, 'th']);
    if (r() < 0.6) terms.push(`${which} dport ${port()}`);
    if (r() < 0.3) terms.push(`${which === 'th' ? 'th' : proto} sport ${port()}`);
    if (which !== 'th' && proto === 'tcp' && r() < 0.3) {
      terms.push(`tcp flags ${pick(['syn', '& (syn | ack) == syn', 'syn / syn,ack', '!= ack', '== 0x12', '& (fin | syn | rst) == 0', 'rst'])}`);
    }
    if (which === 'th' && !terms.some((x) => x.startsWith('meta l4proto'))) terms.unshift(`meta l4proto ${proto}`);
  }
  if (proto === 'icmp' && family !== 0) {
    if (family === 4) terms.push(`icmp type ${pick(['echo-request', '!= echo-request', '{ echo-request, echo-reply }', 'destination-unreachable', 'destination-unreachable icmp code port-unreachable', 'time-exceeded', '13'])}`);
    else terms.push(`icmpv6 type ${pick(['echo-request', '!= echo-request', '{ echo-request, 1 }', 'destination-unreachable', 'destination-unreachable icmpv6 code 4', 'packet-too-big', 'time-exceeded'])}`);
  }
  if (r() < 0.12) terms.push(`ct state ${pick(['new', 'invalid', '{ established, related }', '!= invalid', 'new,established', 'untracked'])}`);
  if (r() < 0.04) terms.push(`ct status ${pick(['assured', '!= confirmed', 'seen-reply'])}`);
  if (r() < 0.04) terms.push(`ct direction ${pick(['original', 'reply'])}`);
  if (r() < 0.15) terms.push(`iifname ${pick(['"r0"', '!= "r0"', '"r*"', '{ "r0", "lo" }', '"r1"', '"lo"'])}`);
  if (r() < 0.15) terms.push(`oifname ${pick(['"r0"', '!= "r1"', '"r*"', '{ "r1", "lo" }', '"c0"'])}`);
  if (family === 4 && r() < 0.1) terms.push(`ip ttl ${pick(['64', '!= 64', '< 10', '> 1', '255'])}`);
  if (family === 6 && r() < 0.1) terms.push(`ip6 hoplimit ${pick(['64', '!= 64', '< 10', '> 1', '255'])}`);
  if (r() < 0.08) terms.push(family === 4 ? `ip length ${pick(['40-100', '< 60', '!= 28', '> 300'])}` : family === 6 ? `ip6 length ${pick(['0-40', '< 20', '!= 8', '> 300'])}` : `meta length ${pick(['40-100', '< 60', '> 300'])}`);
  if (family !== 0 && r() < 0.06) terms.push(`${key} dscp ${pick(['ef', '!= cs0', '{ cs0, af41 }', '0x04'])}`);
  if (r() < 0.05) terms.push(`fib ${pick(['daddr type local', 'daddr type != local', 'saddr type unicast', 'daddr type { unicast, multicast }'])}`);
  if (r() < 0.2) terms.push('counter');
  const later = USERS.slice(self + 1);
  const verdict = pick(['accept', 'accept', 'drop', 'drop', 'return', 'continue', '', '', ...later.flatMap((c) => [`jump ${c}`, `goto ${c}`])]);
  if (verdict) terms.push(verdict);
  // a rule needs a statement
  return terms.length ? terms.join(' ') : 'counter';
}

/** A random inet table over the topology, as an nft file that replaces the ruleset. */
export function genNftTable(r: () => number): string {
  const lines = ['flush ruleset', 'table inet t {'];
  // user chains before the chains that jump to them, the last first
  for (let i = USERS.length - 1; i >= 0; i--) {
    lines.push(`\tchain ${USERS[i]} {`);
    const n = 1 + Math.floor(r() * 5);
    for (let k = 0; k < n; k++) lines.push(`\t\t${genNftRule(r, USERS[i]!, i)}`);
    lines.push('\t}');
  }
  for (const hook of ['input', 'forward', 'output']) {
    lines.push(`\tchain ${hook} {`, `\t\ttype filter hook ${hook} priority 0; policy ${r() < 0.5 ? 'accept' : 'drop'};`);
    const n = 3 + Math.floor(r() * 9);
    for (let k = 0; k < n; k++) lines.push(`\t\t${genNftRule(r, hook, -1)}`);
    lines.push('\t}');
  }
  lines.push('}', '');
  return lines.join('\n');
}

/**
 * Run `seeds` random nft tables with `probes` IPv4 and `probes` IPv6 packets each through the
 * kernel's nft (the pair's "legacy" router) and bpftables' nft: every table both load or both
 * refuse, and every packet fares alike.
 */
export function runRandomNftDiff(t: Test, pair: DiffPair, seeds: number[], probes: number): { packets: number; delivered: number; refused: number } {
  let packets = 0, delivered = 0, refused = 0;
  for (const seed of seeds) {
    const r = rng(50_000 + seed);
    const table = genNftTable(r);
    const kernel = nsExec(pair.legacy.router, 'nft', ['-f', '-'], table);
    const ours = nsExec(pair.ours.router, path.join(BIN, 'nft'), ['-f', '-'], table);
    if (kernel.status !== 0 || ours.status !== 0) {
      t.equal(ours.status !== 0, kernel.status !== 0, `seed ${seed}: both refuse or both load (nft: ${kernel.stderr.trim() || 'loaded'}; bpftables: ${ours.stderr.trim() || 'loaded'})`);
      if (ours.status !== kernel.status) t.comment(`seed ${seed}'s table:\n${table}`);
      refused++;
      continue;
    }
    const out = [
      ...pair.probe(Array.from({ length: probes }, (_, i) => genProbe(r, i)), 4),
      ...pair.probe(Array.from({ length: probes }, (_, i) => genProbe6(r, i)), 6),
    ];
    const wrong = out.filter((o) => o.ours !== o.legacy);
    t.same(wrong.map((o) => `${o.name}: bpftables ${o.ours ? 'delivered' : 'dropped'}, nft ${o.legacy ? 'delivered' : 'dropped'}`), [], `seed ${seed}: ${out.length} packets fare alike`);
    if (wrong.length) t.comment(`seed ${seed}'s table:\n${table}`);
    packets += out.length;
    delivered += out.filter((o) => o.legacy).length;
  }
  return { packets, delivered, refused };
}
