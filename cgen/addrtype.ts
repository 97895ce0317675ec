/**
 * xt_addrtype over mirrors of the kernel's routing state (native/nsmaps.ts
 * syncAddrtype, kept current by bpftables logd from rtnetlink notifications).
 *
 * IPv4: the kernel's inet_dev_addr_type: 0.0.0.0/8 and 255.255.255.255 are
 * BROADCAST, 224.0.0.0/4 MULTICAST, otherwise the type of the longest
 * matching route of the local table (with --limit-iface-in/out only when
 * that route's device is the packet's input/output device), else UNICAST.
 *
 * IPv6: the kernel's match_type6: MULTICAST, UNICAST and UNSPEC are read
 * off the address (ipv6_addr_type) and must all hold; LOCAL, ANYCAST and
 * UNREACHABLE come from a route lookup (match_lookup_rt6), of which the
 * mirror holds every answer: addrtype6Entries flattens the tables as the
 * lookup walks them (local, main, default; a throw route goes on to the
 * next) into one longest-prefix trie, per device for --limit-iface-*
 * (a lookup bound to the device sees only its routes, and LOCAL means an
 * address of that device).
 *
 * nft's IPv6 `fib ... type` (nft_fib_ipv6.c) asks the same lookup another
 * question, so each answer also says which reject route it met
 * (FIB6_BLACKHOLE, FIB6_PROHIBIT; neither with UNREACHABLE: an unreachable
 * route or none), whether the route is a local one (FIB6_ROUTE_LOCAL) and,
 * in a device's entries, whether the address is one of the device's
 * (FIB6_OWN): see emitFib6.
 */
import { type Asm, Helper, R0, R1, R2, R3, R6, R7, R9, R10 } from './asm';
import type { RuleLabels } from './match';
import { S, SKBDEV_IN, SKBDEV_OUT } from './summary';
import type { Match } from '../xlate/ir';

export const ADDRTYPE_MAP = 'addrtype4';
export const ADDRTYPE6_MAP = 'addrtype6';
/** the IPv6 mirror's key: prefix length (u32, bits of what follows), device name (16 bytes, zeros: any device), address */
export const ADDRTYPE6_KEY_SIZE = 36;
/** a per-CPU buffer to build that key in (a rule has 16 bytes of stack) */
export const ADDRTYPE6_SCRATCH_MAP = 'at6key';
const RTN_UNICAST = 1, RTN_LOCAL = 2, RTN_BROADCAST = 3, RTN_ANYCAST = 4, RTN_MULTICAST = 5, RTN_BLACKHOLE = 6, RTN_UNREACHABLE = 7, RTN_PROHIBIT = 8, RTN_THROW = 9;
/** XT_ADDRTYPE_* bits (1 << RTN_*) */
const XT = (rtn: number): number => 1 << rtn;
const LOOKED_UP = XT(RTN_LOCAL) | XT(RTN_ANYCAST) | XT(RTN_UNREACHABLE);
/** the mirror's bits for nft's fib (bits 0, 1, 3 and 5: no XT_ADDRTYPE bit the lookup answers) */
export const FIB6_BLACKHOLE = 1, FIB6_PROHIBIT = 2, FIB6_ROUTE_LOCAL = 8, FIB6_OWN = 32;
/** the tables an IPv6 lookup walks, in order, with the kernel's default policy rules */
const TABLE_ORDER = [255, 254, 253];

/** An IPv6 route as the mirror needs it (native/rtnl.ts Route6). */
/** the IPv4 mirror's value: the route type (byte 0), the device name (from byte 4) */
export const ADDRTYPE_VALUE_SIZE = 20;
/** An IPv4 route of the local table as the mirror needs it (native/rtnl.ts Route4). */
export interface MirrorRoute4 { dst: number; len: number; type: number; dev: string }

/**
 * The IPv4 mirror's entries: the local routing table, (prefix) → route
 * type, device name. A route whose lookup fails (blackhole, unreachable,
 * prohibit, throw, nat, xresolve: the kernel's fib_props error) is UNICAST:
 * inet_dev_addr_type's lookup ends there with the error, without a shorter
 * prefix, and says UNICAST, whatever the device.
 */
export function addrtype4Entries(routes: MirrorRoute4[]): [Buffer, Buffer][] {
  return routes.map((r) => {
    const k = Buffer.alloc(8);
    k.writeUInt32LE(r.len, 0);
    k.writeUInt32BE(r.len === 0 ? 0 : (r.dst & (0xffffffff << (32 - r.len))) >>> 0, 4);
    const v = Buffer.alloc(ADDRTYPE_VALUE_SIZE);
    v[0] = r.type >= RTN_BLACKHOLE ? RTN_UNICAST : r.type;
    v.write(r.dev.slice(0, 15), 4, 'latin1');
    return [k, v];
  });
}

export interface MirrorRoute6 { table: number; dst: Buffer; len: number; type: number; devs: string[]; ifindexes?: number[]; gateway: boolean }
export interface MirrorAddr6 { dev: string; addr: Buffer; tentative: boolean }

function prefixHolds(prefix: Buffer, len: number, addr: Buffer): boolean {
  for (let bit = 0; bit < len; bit += 8) {
    const n = Math.min(8, len - bit), mask = (0xff << (8 - n)) & 0xff;
    if (((prefix[bit >> 3]! ^ addr[bit >> 3]!) & mask) !== 0) return false;
  }
  return true;
}
function masked(addr: Buffer, len: number): Buffer {
  const out = Buffer.alloc(16);
  for (let bit = 0; bit < len; bit += 8) out[bit >> 3] = addr[bit >> 3]! & ((0xff << (8 - Math.min(8, len - bit))) & 0xff);
  return out;
}

/**
 * The IPv6 route lookup flattened: for the unbound lookup (device '') and
 * each device, every route prefix, every address that
 * ipv6_anycast_destination would call anycast (a route's own prefix
 * address, below /127, without a gateway) and each of the device's
 * addresses, with the route the lookup chooses for the addresses whose
 * longest mirrored prefix it is (undefined: no route) and the device's own
 * addresses (none for the unbound lookup).
 */
export function walk6(routes: MirrorRoute6[], addrs: MirrorAddr6[], visit: (dev: string, addr: Buffer, len: number, chosen: MirrorRoute6 | undefined, own: Buffer[]) => void): void {
  const walked = routes.filter((r) => TABLE_ORDER.includes(r.table));
  const devices = ['', ...new Set([...walked.flatMap((r) => r.devs), ...addrs.map((a) => a.dev)].filter((d) => d))];
  for (const dev of devices) {
    const seen = dev === '' ? walked : walked.filter((r) => r.devs.includes(dev));
    const own = dev === '' ? [] : addrs.filter((a) => a.dev === dev && !a.tentative).map((a) => a.addr);
    const points: [Buffer, number][] = [
      ...seen.map((r): [Buffer, number] => [masked(r.dst, r.len), r.len]),
      ...seen.filter((r) => r.len < 127 && !r.gateway).map((r): [Buffer, number] => [masked(r.dst, 128), 128]),
      ...own.map((a): [Buffer, number] => [a, 128]),
    ];
    const done = new Set<string>();
    for (const [addr, len] of points) {
      const id = `${addr.toString('hex')}/${len}`;
      if (done.has(id)) continue;
      done.add(id);
      let chosen: MirrorRoute6 | undefined;
      for (const table of TABLE_ORDER) {
        let best: MirrorRoute6 | undefined;
        for (const r of seen) if (r.table === table && r.len <= len && prefixHolds(r.dst, r.len, addr) && (!best || r.len > best.len)) best = r;
        if (best && best.type !== RTN_THROW) { chosen = best; break; }
      }
      visit(dev, addr, len, chosen, own);
    }
  }
}

/** The key of the IPv6 mirrors: prefix length (of what follows), device name, address. */
export function key6(dev: string, addr: Buffer, len: number): Buffer {
  const key = Buffer.alloc(ADDRTYPE6_KEY_SIZE);
  key.writeUInt32LE(128 + len, 0);
  key.write(dev.slice(0, 15), 4, 'latin1');
  addr.copy(key, 20);
  return key;
}

/** Does ipv6_anycast_destination call `addr` anycast on the chosen route? */
export const anycast6 = (chosen: MirrorRoute6, addr: Buffer, len: number): boolean =>
  chosen.type === RTN_ANYCAST || (chosen.len < 127 && !chosen.gateway && len === 128 && masked(chosen.dst, 128).equals(addr));

/**
 * The IPv6 addrtype mirror's entries (key → XT_ADDRTYPE bits of LOCAL,
 * ANYCAST, UNREACHABLE, and fib's bits): the answer of the lookup for each
 * point walk6 gives. No entry: no route.
 */
export function addrtype6Entries(routes: MirrorRoute6[], addrs: MirrorAddr6[]): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  walk6(routes, addrs, (dev, addr, len, chosen, own) => {
    const ownAddress = len === 128 && own.some((a) => a.equals(addr));
    let bits = ownAddress ? FIB6_OWN : 0;
    if (!chosen || [RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT].includes(chosen.type)) {
      bits |= XT(RTN_UNREACHABLE) | (chosen?.type === RTN_BLACKHOLE ? FIB6_BLACKHOLE : chosen?.type === RTN_PROHIBIT ? FIB6_PROHIBIT : 0);
    } else {
      if (chosen.type === RTN_LOCAL) bits |= FIB6_ROUTE_LOCAL;
      if (dev === '' ? chosen.type === RTN_LOCAL : ownAddress) bits |= XT(RTN_LOCAL);
      if (anycast6(chosen, addr, len)) bits |= XT(RTN_ANYCAST);
    }
    out.push([key6(dev, addr, len), Buffer.from([bits])]);
  });
  return out;
}

export function emitAddrtype(a: Asm, m: Extract<Match, { kind: 'addrtype' }>, l: RuleLabels, family: 4 | 6): void {
  if (family === 6) { if (m.fib) emitFib6(a, m, l); else emitAddrtype6(a, m, l); return; }
  for (const [part, off] of [[m.src, S.SADDR], [m.dst, S.DADDR]] as const) {
    if (!part) continue;
    const typed = a.fresh('attyped');
    // r6 = the address's route type
    a.ldx(4, R1, R9, off);
    a.mov64(R6, RTN_BROADCAST).movReg(R2, R1).alu32('rsh', R2, { imm: 24 }).jmp32('jeq', R2, 0, typed).jmp32('jeq', R1, -1, typed);
    a.mov64(R6, RTN_MULTICAST).movReg(R2, R1).alu32('rsh', R2, { imm: 28 }).jmp32('jeq', R2, 0xe, typed);
    a.mov64(R6, RTN_UNICAST);
    a.st(4, R10, l.scratch, 32).toBe(R1, 32).stx(4, R10, l.scratch + 4, R1);
    a.ldMapFd(R1, ADDRTYPE_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
    a.jmp('jeq', R0, 0, typed);
    if (m.limitIn || m.limitOut) {
      // the route's device must be the packet's: its 16-byte name against the summary's
      const dev = m.limitIn ? S.IN : S.OUT;
      for (const o of [0, 8]) a.ldx(8, R2, R0, 4 + o).ldx(8, R3, R9, dev + o).jmpReg('jne', R2, R3, typed);
    }
    a.ldx(1, R6, R0, 0);
    a.label(typed);
    // (1 << type) & types (no route type is above RTN_XRESOLVE, 11), xor invert
    const bits = a.fresh('atbits');
    a.mov64(R1, 0).jmp('jgt', R6, 11, bits).mov64(R1, 1).alu64('lsh', R1, R6).alu64('and', R1, { imm: part.types });
    a.label(bits);
    if (part.invert) {
      const ok = a.fresh('atok');
      a.jmp('jeq', R1, 0, ok).ja(l.next);
      a.label(ok);
    } else a.jmp('jeq', R1, 0, l.next);
  }
}

function emitAddrtype6(a: Asm, m: Extract<Match, { kind: 'addrtype' }>, l: RuleLabels): void {
  for (const [part, off] of [[m.src, S.SADDR6], [m.dst, S.DADDR6]] as const) {
    if (!part) continue;
    const mask = part.types, decided = a.fresh('at6');
    // r1: does the address have the types (0 or 1)? r2, r3: its halves, host order
    a.mov64(R1, 0).ldx(8, R2, R9, off).ldx(8, R3, R9, off + 8);
    if (mask & XT(RTN_MULTICAST)) a.movReg(R6, R2).alu64('rsh', R6, { imm: 56 }).jmp('jne', R6, 0xff, decided);
    if (mask & XT(RTN_UNICAST)) {
      // ipv6_addr_type: all but multicast, :: and ::ffff:0:0/96 is unicast
      const uni = a.fresh('at6uni');
      a.movReg(R6, R2).alu64('rsh', R6, { imm: 56 }).jmp('jeq', R6, 0xff, decided).jmp('jne', R2, 0, uni);
      a.jmp('jeq', R3, 0, decided).movReg(R6, R3).alu64('rsh', R6, { imm: 32 }).jmp('jeq', R6, 0xffff, decided);
      a.label(uni);
    }
    if (mask & XT(0)) a.jmp('jne', R2, 0, decided).jmp('jne', R3, 0, decided);
    if (mask & LOOKED_UP) {
      const found = a.fresh('at6rt');
      a.st(4, R10, l.scratch, 0).ldMapFd(R1, ADDRTYPE6_SCRATCH_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
      a.jmp('jeq', R0, 0, l.hotdrop).movReg(R7, R0);
      a.st(4, R7, 0, 256);
      const dev = m.limitIn ? S.IN : m.limitOut ? S.OUT : undefined;
      for (const o of [0, 8]) {
        if (dev === undefined) a.st(8, R7, 4 + o, 0);
        else a.ldx(8, R1, R9, dev + o).stx(8, R7, 4 + o, R1);
        a.ldx(8, R1, R9, off + o).toBe(R1, 64).stx(8, R7, 20 + o, R1);
      }
      a.ldMapFd(R1, ADDRTYPE6_MAP).movReg(R2, R7).call(Helper.map_lookup_elem);
      // no route at all: UNREACHABLE
      a.mov64(R1, XT(RTN_UNREACHABLE)).jmp('jeq', R0, 0, found).ldx(1, R1, R0, 0);
      a.label(found).alu64('and', R1, { imm: mask & LOOKED_UP });
      a.jmp('jeq', R1, 0, decided);
    }
    a.mov64(R1, 1);
    a.label(decided);
    a.jmp(part.invert ? 'jne' : 'jeq', R1, 0, l.next);
  }
}

/** Copy a 16-byte device name from the summary (offset `from`) into the key buffer at r7. */
function keyDevice(a: Asm, from: number): void {
  for (const o of [0, 8]) a.ldx(8, R1, R9, from + o).stx(8, R7, 4 + o, R1);
}

/** Jump to `target` when (`jeq`) or unless (`jne`) the IPv6 address at summary `off` is link-local (fe80::/10); `reg` is clobbered. */
export function linkLocalJump(a: Asm, reg: typeof R1, off: number, op: 'jeq' | 'jne', target: string): void {
  a.ldx(8, reg, R9, off).alu64('rsh', reg, { imm: 54 }).jmp(op, reg, 0xfe80 >> 6, target);
}

/**
 * The IPv6 mirrors' key for the address at summary `off`, built in the
 * per-CPU buffer (left in r7; no buffer: hotdrop): unbound, or for a
 * link-local address on a device: `dev`'s (a summary name; with `index`,
 * only when the hook has that device), else skb->dev's (SKBDEV).
 */
export function emitKey6(a: Asm, l: RuleLabels, off: number, dev?: { name: number; index?: number }): void {
  a.st(4, R10, l.scratch, 0).ldMapFd(R1, ADDRTYPE6_SCRATCH_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
  a.jmp('jeq', R0, 0, l.hotdrop).movReg(R7, R0);
  a.st(4, R7, 0, 256);
  for (const o of [0, 8]) a.st(8, R7, 4 + o, 0).ldx(8, R1, R9, off + o).toBe(R1, 64).stx(8, R7, 20 + o, R1);
  const keyed = a.fresh('k6dev'), viaSkb = a.fresh('k6skb'), viaOut = a.fresh('k6out');
  linkLocalJump(a, R1, off, 'jne', keyed);
  if (dev) {
    if (dev.index !== undefined) a.ldx(4, R1, R9, dev.index).jmp('jeq', R1, 0, viaSkb);
    keyDevice(a, dev.name);
    a.ja(keyed);
  }
  a.label(viaSkb);
  a.ldx(1, R1, R9, S.SKBDEV).jmp('jeq', R1, SKBDEV_OUT, viaOut).jmp('jne', R1, SKBDEV_IN, keyed);
  keyDevice(a, S.IN);
  a.ja(keyed).label(viaOut);
  keyDevice(a, S.OUT);
  a.label(keyed);
}

/**
 * nft's IPv6 `fib saddr|daddr [. iif|. oif] type` (__nft_fib6_eval_type):
 * the address is looked up unbound, or for a link-local address on the
 * device (iif/oif, else skb->dev: SKBDEV); a reject route gives its type
 * (blackhole, prohibit; unreachable for the rest and for no route), a
 * route to an anycast destination ANYCAST; then LOCAL when the route is a
 * local one (without iif/oif) or the address is one of the device's (with
 * them: nf_ipv6_chk_addr, strict); else the address's own type: MULTICAST,
 * UNICAST or UNSPEC (ipv6_addr_type: :: and ::ffff:0:0/96 are neither).
 * r6 holds the type, r7 the per-CPU key buffer.
 */
function emitFib6(a: Asm, m: Extract<Match, { kind: 'addrtype' }>, l: RuleLabels): void {
  const dev = m.limitIn ? S.IN : m.limitOut ? S.OUT : undefined;
  for (const [part, off] of [[m.src, S.SADDR6], [m.dst, S.DADDR6]] as const) {
    if (!part) continue;
    const typed = a.fresh('f6type'), usable = a.fresh('f6ok'), byAddress = a.fresh('f6addr');
    // a link-local address is looked up on a device
    emitKey6(a, l, off, dev === undefined ? undefined : { name: dev });
    a.ldMapFd(R1, ADDRTYPE6_MAP).movReg(R2, R7).call(Helper.map_lookup_elem);
    a.mov64(R6, RTN_UNREACHABLE).jmp('jeq', R0, 0, typed).ldx(1, R1, R0, 0);
    // a reject route (or none): its type
    a.movReg(R2, R1).alu64('and', R2, { imm: XT(RTN_UNREACHABLE) }).jmp('jeq', R2, 0, usable);
    a.mov64(R6, RTN_BLACKHOLE).movReg(R2, R1).alu64('and', R2, { imm: FIB6_BLACKHOLE }).jmp('jne', R2, 0, typed);
    a.mov64(R6, RTN_PROHIBIT).movReg(R2, R1).alu64('and', R2, { imm: FIB6_PROHIBIT }).jmp('jne', R2, 0, typed);
    a.mov64(R6, RTN_UNREACHABLE).ja(typed);
    a.label(usable);
    a.mov64(R6, RTN_ANYCAST).movReg(R2, R1).alu64('and', R2, { imm: XT(RTN_ANYCAST) }).jmp('jne', R2, 0, typed);
    a.mov64(R6, RTN_LOCAL);
    if (dev === undefined) a.alu64('and', R1, { imm: FIB6_ROUTE_LOCAL }).jmp('jne', R1, 0, typed);
    else {
      // one of the device's addresses: the lookup above was the device's for a link-local one, else ask the device's entries
      const unbound = a.fresh('f6own');
      linkLocalJump(a, R2, off, 'jne', unbound);
      a.alu64('and', R1, { imm: FIB6_OWN }).jmp('jne', R1, 0, typed).ja(byAddress);
      a.label(unbound);
      keyDevice(a, dev);
      a.ldMapFd(R1, ADDRTYPE6_MAP).movReg(R2, R7).call(Helper.map_lookup_elem);
      a.jmp('jeq', R0, 0, byAddress).ldx(1, R1, R0, 0).alu64('and', R1, { imm: FIB6_OWN }).jmp('jne', R1, 0, typed);
    }
    a.label(byAddress);
    a.ldx(8, R2, R9, off).ldx(8, R3, R9, off + 8);
    a.mov64(R6, RTN_MULTICAST).movReg(R1, R2).alu64('rsh', R1, { imm: 56 }).jmp('jeq', R1, 0xff, typed);
    a.mov64(R6, RTN_UNICAST).jmp('jne', R2, 0, typed);
    a.mov64(R6, 0).jmp('jeq', R3, 0, typed).movReg(R1, R3).alu64('rsh', R1, { imm: 32 }).jmp('jeq', R1, 0xffff, typed);
    a.mov64(R6, RTN_UNICAST);
    a.label(typed);
    a.mov64(R1, 1).alu64('lsh', R1, R6).alu64('and', R1, { imm: part.types });
    a.jmp(part.invert ? 'jne' : 'jeq', R1, 0, l.next);
  }
}
