/** The IPv6 addrtype mirror's contents: the kernel's route lookup flattened into one longest-prefix trie. */
import t from 'tap';
import { addrtype6Entries, FIB6_BLACKHOLE, FIB6_OWN, FIB6_PROHIBIT, FIB6_ROUTE_LOCAL, type MirrorAddr6, type MirrorRoute6 } from '../cgen/addrtype';
import { parseIpv6 } from '../xlate/addr';

const LOCAL = 4, ANYCAST = 16, UNREACHABLE = 128, XT_BITS = LOCAL | ANYCAST | UNREACHABLE;
const a6 = (s: string): Buffer => { const w = parseIpv6(s)!; const b = Buffer.alloc(16); w.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };
const route = (table: number, dst: string, len: number, type: number, devs: string[], gateway = false): MirrorRoute6 => ({ table, dst: a6(dst), len, type, devs, gateway });

/** What a lookup of `addr` (bound to `dev`, or not) finds in the entries: longest prefix, as the LPM trie does; all the bits. */
function lookupAll(entries: [Buffer, Buffer][], addr: string, dev = ''): number {
  const key = Buffer.alloc(32);
  key.write(dev, 0, 'latin1');
  a6(addr).copy(key, 16);
  let best = -1, bits = UNREACHABLE;
  for (const [k, v] of entries) {
    const len = k.readUInt32LE(0);
    let holds = true;
    for (let b = 0; b < len && holds; b++) if (((k[4 + (b >> 3)]! ^ key[b >> 3]!) >> (7 - (b & 7))) & 1) holds = false;
    if (holds && len > best) { best = len; bits = v[0]!; }
  }
  return bits;
}
/** The XT_ADDRTYPE bits of that answer (what -m addrtype reads). */
const lookup = (entries: [Buffer, Buffer][], addr: string, dev = ''): number => lookupAll(entries, addr, dev) & XT_BITS;
/** nft's bits of that answer (what fib reads). */
const fibBits = (entries: [Buffer, Buffer][], addr: string, dev = ''): number => lookupAll(entries, addr, dev) & ~XT_BITS;

const routes = [
  route(255, 'fd00:1::1', 128, 2, ['r0']), route(255, 'fd00:1::', 128, 4, ['r0']),
  route(254, 'fd00:1::', 64, 1, ['r0']), route(254, 'fd00:2::', 64, 1, ['r1']),
  route(254, '2001:db8::', 32, 1, ['r1'], true),
  route(254, '2001:db8:bad::', 48, 7, ['lo']),
  route(254, 'fd00:99::', 64, 6, ['lo']), route(254, 'fd00:98::', 64, 8, ['lo']),
  // the local table's /64 decides before the main table's longer route
  route(255, 'fd00:9::', 64, 1, ['r1']), route(254, 'fd00:9::5', 128, 7, ['lo']),
  // a throw route sends the lookup on to the next table
  route(254, 'fd00:7::', 64, 9, ['lo']), route(253, 'fd00:7::', 48, 1, ['r0']),
  route(1000, 'fd00:8::', 64, 1, ['r0']),
];
const addrs: MirrorAddr6[] = [{ dev: 'r0', addr: a6('fd00:1::1'), tentative: false }, { dev: 'r0', addr: a6('fd00:1::7'), tentative: true }];
const e = addrtype6Entries(routes, addrs);

t.equal(lookup(e, 'fd00:1::1'), LOCAL, 'a local route: LOCAL');
t.equal(lookup(e, 'fd00:1::'), ANYCAST, 'an anycast route: ANYCAST');
t.equal(lookup(e, 'fd00:2::'), ANYCAST, 'a connected prefix\'s own address: anycast (ipv6_anycast_destination)');
t.equal(lookup(e, '2001:db8::'), 0, 'not behind a gateway');
t.equal(lookup(e, 'fd00:2::5'), 0, 'a routed address: none of the looked-up types');
t.equal(lookup(e, '2001:db8:bad::1'), UNREACHABLE, 'an unreachable route');
t.equal(lookup(e, '3fff::1'), UNREACHABLE, 'no route at all');
t.equal(lookup(e, 'fd00:9::5'), 0, 'tables are walked in order: the local table\'s /64 hides main\'s /128');
t.equal(lookup(e, 'fd00:7::1'), 0, 'a throw route goes on to the default table');
t.equal(lookup(e, 'fd00:8::1'), UNREACHABLE, 'tables no default rule walks are not consulted');
t.equal(lookup(e, 'fd00:1::1', 'r0'), LOCAL, 'bound to the device: its own address is LOCAL');
t.equal(lookup(e, 'fd00:1::7', 'r0'), 0, 'a tentative address is not (nf_ipv6_chk_addr skips it)');
t.equal(lookup(e, 'fd00:2::5', 'r0'), UNREACHABLE, 'bound to a device without a route there: UNREACHABLE');
t.equal(lookup(e, 'fd00:2::5', 'r1'), 0, 'bound to the route\'s device: found');

// nft's fib reads which reject route the lookup met, local routes, and a device's own addresses
t.equal(lookupAll(e, 'fd00:99::1'), UNREACHABLE | FIB6_BLACKHOLE, 'a blackhole route: UNREACHABLE for addrtype, BLACKHOLE for fib');
t.equal(lookupAll(e, 'fd00:98::1'), UNREACHABLE | FIB6_PROHIBIT, 'a prohibit route: PROHIBIT for fib');
t.equal(fibBits(e, '2001:db8:bad::1'), 0, 'an unreachable route: neither (fib reads UNREACHABLE)');
t.equal(fibBits(e, '3fff::1'), 0, 'no route: neither');
t.equal(fibBits(e, 'fd00:1::1'), FIB6_ROUTE_LOCAL, 'unbound, a local route');
t.equal(fibBits(e, 'fd00:1::1', 'r0'), FIB6_ROUTE_LOCAL | FIB6_OWN, 'bound to r0: a local route and one of r0\'s addresses');
t.equal(fibBits(e, 'fd00:1::7', 'r0'), 0, 'a tentative address is not the device\'s');
t.equal(fibBits(e, 'fd00:2::5'), 0, 'a routed address: none');
