/** The route mirrors of nft's fib oif: the kernel's route lookup flattened into longest-prefix tries, with the devices it gives. */
import t from 'tap';
import { fib4Entries, fib6Entries, type MirrorRoute4 } from '../cgen/fibroute';
import type { MirrorAddr6, MirrorRoute6 } from '../cgen/addrtype';
import { parseIpv6 } from '../xlate/addr';

const ip4 = (s: string): number => s.split('.').reduce((n, x) => n * 256 + Number(x), 0);
const r4 = (table: number, dst: string, len: number, type: number, ifindexes: number[], extra: Partial<MirrorRoute4> = {}): MirrorRoute4 =>
  ({ table, dst: ip4(dst), len, tos: 0, priority: 0, type, ifindexes, devs: ifindexes.map((i) => `d${i}`), ...extra });

/** What the LPM trie answers for `addr`: [usable, first device index, its name, nexthop indexes]. */
function lookup4(entries: [Buffer, Buffer][], addr: string): [boolean, number, string, number[]] | undefined {
  let best: Buffer | undefined, bestLen = -1;
  for (const [k, v] of entries) {
    const len = k.readUInt32LE(0), net = k.readUInt32BE(4);
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((ip4(addr) & mask) >>> 0) === net && len > bestLen) { best = v; bestLen = len; }
  }
  if (!best) return undefined;
  const hops: number[] = [];
  for (let i = 0; i < 8 && best.readUInt32LE(24 + 4 * i); i++) hops.push(best.readUInt32LE(24 + 4 * i));
  return [best[0] === 1, best.readUInt32LE(4), best.toString('latin1', 8, 24).replace(/\0+$/, ''), hops];
}

const routes4 = [
  r4(255, '10.0.1.1', 32, 2, [2]), r4(255, '10.0.1.255', 32, 3, [2]),
  r4(254, '10.0.1.0', 24, 1, [2]), r4(254, '10.0.2.0', 24, 1, [3]),
  r4(254, '10.0.3.0', 24, 1, [2, 3]),
  r4(254, '10.99.0.0', 24, 6, []), r4(254, '10.98.0.0', 24, 8, []),
  // of two routes to one prefix the lower metric wins; a TOS route holds only for its TOS
  r4(254, '10.0.4.0', 24, 1, [3], { priority: 10 }), r4(254, '10.0.4.0', 24, 1, [2], { priority: 5 }), r4(254, '10.0.5.0', 24, 1, [3], { tos: 0x10 }),
  // a throw route sends the lookup on to the default table
  r4(254, '172.16.0.0', 16, 9, []), r4(253, '172.16.0.0', 12, 1, [3]),
  r4(1000, '10.8.0.0', 16, 1, [2]),
];
const e4 = fib4Entries(routes4);
t.same(lookup4(e4, '10.0.1.2'), [true, 2, 'd2', [2]], 'a connected route: its device');
t.same(lookup4(e4, '10.0.1.1')?.[0], false, 'a local route gives no device');
t.same(lookup4(e4, '10.0.1.255'), [true, 2, 'd2', [2]], 'a broadcast route gives its device');
t.same(lookup4(e4, '10.0.3.9'), [true, 2, 'd2', [2, 3]], 'multipath: the first nexthop, every nexthop for iif');
t.same(lookup4(e4, '10.99.0.1')?.[0], false, 'a blackhole route: none');
t.same(lookup4(e4, '10.98.0.1')?.[0], false, 'a prohibit route: none');
t.same(lookup4(e4, '10.0.4.1')?.[1], 2, 'the lower metric wins');
t.equal(lookup4(e4, '10.0.5.1'), undefined, 'a TOS route is left out');
t.same(lookup4(e4, '172.16.1.1'), [true, 3, 'd3', [3]], 'a throw route: the default table answers');
t.same(lookup4(e4, '172.17.1.1'), [true, 3, 'd3', [3]], 'the default table\'s own prefix');
t.equal(lookup4(e4, '10.8.0.1'), undefined, 'a table no default rule walks: no route');

const a6 = (s: string): Buffer => { const w = parseIpv6(s)!; const b = Buffer.alloc(16); w.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };
const r6 = (table: number, dst: string, len: number, type: number, devs: string[], ifindexes: number[]): MirrorRoute6 => ({ table, dst: a6(dst), len, type, devs, ifindexes, gateway: false });
/** The value the IPv6 trie gives for `addr` (bound to `dev`, or not): [usable, device index]. */
function lookup6(entries: [Buffer, Buffer][], addr: string, dev = ''): [boolean, number] | undefined {
  const key = Buffer.alloc(32);
  key.write(dev, 0, 'latin1');
  a6(addr).copy(key, 16);
  let best: Buffer | undefined, bestLen = -1;
  for (const [k, v] of entries) {
    const len = k.readUInt32LE(0);
    let holds = true;
    for (let b = 0; b < len && holds; b++) if (((k[4 + (b >> 3)]! ^ key[b >> 3]!) >> (7 - (b & 7))) & 1) holds = false;
    if (holds && len > bestLen) { best = v; bestLen = len; }
  }
  return best && [best[0] === 1, best.readUInt32LE(4)];
}
const routes6 = [
  r6(255, 'fd00:1::1', 128, 2, ['r0'], [2]), r6(255, 'fd00:1::', 128, 4, ['r0'], [2]), r6(255, 'fe80::aa', 128, 2, ['r0'], [2]),
  r6(254, 'fd00:1::', 64, 1, ['r0'], [2]), r6(254, 'fd00:2::', 64, 1, ['r1'], [3]),
  r6(254, 'fe80::', 64, 1, ['r0'], [2]), r6(254, 'fe80::', 64, 1, ['r1'], [3]),
  r6(254, 'fd00:99::', 64, 6, ['lo'], [1]),
];
const addrs6: MirrorAddr6[] = [{ dev: 'r0', addr: a6('fd00:1::1'), tentative: false }, { dev: 'r0', addr: a6('fe80::aa'), tentative: false }];
const e6 = fib6Entries(routes6, addrs6);
t.same(lookup6(e6, 'fd00:1::2'), [true, 2], 'a connected route: its device');
t.same(lookup6(e6, 'fd00:2::9'), [true, 3], 'another');
t.same(lookup6(e6, 'fd00:1::1')?.[0], false, 'a local route: none');
t.same(lookup6(e6, 'fd00:1::')?.[0], false, 'an anycast route: none');
t.same(lookup6(e6, 'fd00:99::1')?.[0], false, 'a blackhole route: none');
t.same(lookup6(e6, 'fe80::bb', 'r1'), [true, 3], 'a link-local address, bound to r1: r1\'s route');
t.same(lookup6(e6, 'fe80::aa', 'r0')?.[0], false, 'r0\'s own link-local address, bound to r0: its local route');
t.same(lookup6(e6, 'fe80::aa', 'r1'), [true, 3], 'the same, bound to r1: r1\'s prefix');
