/**
 * nft's `fib saddr|daddr [. iif|. oif] [. mark] oif|oifname|check`: the
 * device the kernel's route lookup gives for the address (nft_fib4_eval,
 * nft_fib6_eval), over mirrors of the routing tables that bpftables logd
 * keeps current (native/nsmaps.ts syncFibRoutes).
 *
 * IPv4 (fib_lookup without custom rules: the local table merged into main,
 * then the default table): an error route (unreachable, blackhole,
 * prohibit), a local route or no route gives no device; else the first
 * nexthop's device, or with iif/oif the packet's device when one of the
 * route's nexthops uses it. IPv6 (ip6_route_lookup: local, main, default;
 * a link-local address on the device, as for fib type): likewise, where a
 * reject, anycast or local route gives none and iif/oif must be the route's
 * device.
 *
 * Before the lookup, as the kernel: at prerouting and input a packet whose
 * socket says it came in where its route goes, or a loopback packet, gives
 * the input device (nft_fib_can_skip: the prologue's FIBSKIP); IPv4 from
 * 0.0.0.0/8 to 255.255.255.255 or 224.0.0.0/24 gives skb->dev; ICMPv6 from
 * :: to a link-local address gives the input device.
 */
import { type Asm, Helper, R0, R1, R2, R6, R7, R9, R10 } from './asm';
import { emitKey6, key6, linkLocalJump, type MirrorAddr6, type MirrorRoute6, walk6 } from './addrtype';
import type { RuleLabels } from './match';
import { S, SKBDEV_IN, SKBDEV_OUT } from './summary';
import type { Match } from '../xlate/ir';

export const FIBROUTE4_MAP = 'fib4';
export const FIBROUTE6_MAP = 'fib6';
/** A mirror value: u8 usable (a route whose device the lookup reports), u32 its first nexthop's device index at 4, its name at 8, and up to FIB_NEXTHOPS nexthop device indexes at 24 (0 ends them). */
export const FIB_VALUE_SIZE = 56;
const FIB_NEXTHOPS = 8;
const RTN_LOCAL = 2, RTN_ANYCAST = 4, RTN_BLACKHOLE = 6, RTN_UNREACHABLE = 7, RTN_PROHIBIT = 8, RTN_THROW = 9;

/** An IPv4 route as the mirror needs it (native/rtnl.ts RouteAll4; dst in host order). */
export interface MirrorRoute4 { table: number; dst: number; len: number; tos: number; priority: number; type: number; ifindexes: number[]; devs: string[] }

function value(usable: boolean, ifindexes: number[], devs: string[]): Buffer {
  const v = Buffer.alloc(FIB_VALUE_SIZE);
  if (!usable || ifindexes.length === 0) return v;
  v[0] = 1;
  v.writeUInt32LE(ifindexes[0]!, 4);
  v.write((devs[0] ?? '').slice(0, 15), 8, 'latin1');
  ifindexes.slice(0, FIB_NEXTHOPS).forEach((x, i) => v.writeUInt32LE(x, 24 + 4 * i));
  return v;
}

const mask4 = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
const holds4 = (r: MirrorRoute4, addr: number): boolean => ((addr & mask4(r.len)) >>> 0) === ((r.dst & mask4(r.len)) >>> 0);

/**
 * The IPv4 mirror's entries (prefix → value): each route prefix of the
 * local, main and default tables with what the lookup answers for the
 * addresses whose longest mirrored prefix it is. Routes with a TOS are
 * left out (they hold only for that TOS); of equal prefixes the lowest
 * metric wins, as the kernel orders them.
 */
export function fib4Entries(routes: MirrorRoute4[]): [Buffer, Buffer][] {
  const walked = routes.filter((r) => r.tos === 0 && (r.table === 255 || r.table === 254 || r.table === 253));
  const best = (table: (t: number) => boolean, addr: number, len: number): MirrorRoute4 | undefined => {
    let b: MirrorRoute4 | undefined;
    for (const r of walked) {
      if (!table(r.table) || r.len > len || !holds4(r, addr)) continue;
      if (!b || r.len > b.len || (r.len === b.len && r.priority < b.priority)) b = r;
    }
    return b;
  };
  const out = new Map<string, [Buffer, Buffer]>();
  for (const p of walked) {
    const addr = (p.dst & mask4(p.len)) >>> 0;
    const key = Buffer.alloc(8);
    key.writeUInt32LE(p.len, 0);
    key.writeUInt32BE(addr, 4);
    const id = key.toString('hex');
    if (out.has(id)) continue;
    let chosen = best((t) => t !== 253, addr, p.len);
    if (!chosen || chosen.type === RTN_THROW) chosen = best((t) => t === 253, addr, p.len);
    const usable = !!chosen && ![RTN_LOCAL, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW].includes(chosen.type);
    out.set(id, [key, value(usable, chosen?.ifindexes ?? [], chosen?.devs ?? [])]);
  }
  return [...out.values()];
}

/** The IPv6 mirror's entries (the addrtype mirror's keys → value): a reject, anycast or local route has no device to give. */
export function fib6Entries(routes: MirrorRoute6[], addrs: MirrorAddr6[]): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  walk6(routes, addrs, (dev, addr, len, chosen) => {
    const usable = !!chosen && ![RTN_LOCAL, RTN_ANYCAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW].includes(chosen.type);
    out.push([key6(dev, addr, len), value(usable, chosen?.ifindexes ?? [], chosen?.devs ?? [])]);
  });
  return out;
}

/** Copy a device from the summary: its index into r6, its name into the rule's scratch space. */
function fromSummary(a: Asm, l: RuleLabels, index: number, name: number, to: string): void {
  a.ldx(4, R6, R9, index);
  for (const o of [0, 8]) a.ldx(8, R1, R9, name + o).stx(8, R10, l.scratch + o, R1);
  a.ja(to);
}

export function emitFibRoute(a: Asm, m: Extract<Match, { kind: 'fibroute' }>, l: RuleLabels, family: 4 | 6): void {
  const found = a.fresh('fibdev'), none = a.fresh('fibnone'), inDev = a.fresh('fibin'), outDev = a.fresh('fibout'), lookup = a.fresh('fiblookup');
  const addrOff = family === 4 ? (m.addr === 'saddr' ? S.SADDR : S.DADDR) : (m.addr === 'saddr' ? S.SADDR6 : S.DADDR6);
  const flagged = m.dev === 'iif' ? { index: S.IIF, name: S.IN } : m.dev === 'oif' ? { index: S.OIF, name: S.OUT } : undefined;
  // nft_fib_can_skip
  a.ldx(1, R1, R9, S.FIBSKIP).jmp('jne', R1, 0, inDev);
  if (family === 4) {
    // from 0.0.0.0/8 to the limited broadcast or local multicast: skb->dev
    const skbDev = a.fresh('fibskb');
    a.ldx(4, R1, R9, S.SADDR).alu32('rsh', R1, { imm: 24 }).jmp32('jne', R1, 0, lookup);
    a.ldx(4, R1, R9, S.DADDR).jmp32('jeq', R1, -1, skbDev).alu32('rsh', R1, { imm: 8 }).jmp32('jne', R1, 0xe00000, lookup);
    a.label(skbDev);
    a.ldx(1, R1, R9, S.SKBDEV).jmp('jeq', R1, SKBDEV_IN, inDev).jmp('jeq', R1, SKBDEV_OUT, outDev).ja(none);
    a.label(lookup);
    a.st(4, R10, l.scratch, 32).ldx(4, R1, R9, addrOff).toBe(R1, 32).stx(4, R10, l.scratch + 4, R1);
    a.ldMapFd(R1, FIBROUTE4_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
  } else {
    // ICMPv6 from :: to a link-local address: the input device
    a.ldx(1, R1, R9, S.PROTO).jmp('jne', R1, 58, lookup);
    a.ldx(8, R1, R9, S.SADDR6).jmp('jne', R1, 0, lookup).ldx(8, R1, R9, S.SADDR6 + 8).jmp('jne', R1, 0, lookup);
    linkLocalJump(a, R1, S.DADDR6, 'jeq', inDev);
    a.label(lookup);
    // a link-local address is looked up on the device: the packet's iif/oif, else skb->dev
    emitKey6(a, l, addrOff, flagged);
    a.ldMapFd(R1, FIBROUTE6_MAP).movReg(R2, R7).call(Helper.map_lookup_elem);
  }
  a.jmp('jeq', R0, 0, none).ldx(1, R1, R0, 0).jmp('jeq', R1, 0, none);
  if (flagged) {
    // the packet's device when the route uses it (IPv4: any nexthop; IPv6: the route's device); a hook without it: as unflagged
    const unflagged = a.fresh('fibany'), uses = a.fresh('fibuses');
    a.ldx(4, R6, R9, flagged.index).jmp('jeq', R6, 0, unflagged);
    for (let i = 0; i < (family === 4 ? FIB_NEXTHOPS : 1); i++) {
      a.ldx(4, R1, R0, 24 + 4 * i).jmpReg('jeq', R1, R6, uses).jmp('jeq', R1, 0, none);
    }
    a.ja(none).label(uses);
    fromSummary(a, l, flagged.index, flagged.name, found);
    a.label(unflagged);
  }
  a.ldx(4, R6, R0, 4);
  for (const o of [0, 8]) a.ldx(8, R1, R0, 8 + o).stx(8, R10, l.scratch + o, R1);
  a.ja(found);
  a.label(inDev);
  fromSummary(a, l, S.IIF, S.IN, found);
  a.label(outDev);
  fromSummary(a, l, S.OIF, S.OUT, found);
  a.label(none);
  a.mov64(R6, 0).st(8, R10, l.scratch, 0).st(8, R10, l.scratch + 8, 0);
  a.label(found);
  // r6: the device's index (0: none), the scratch space: its name
  const matched = a.fresh('fibmatch');
  if (m.indexes) {
    for (const x of m.indexes) a.jmp('jeq', R6, x, matched);
  } else {
    for (const p of m.names ?? []) {
      const bytes = Buffer.alloc(16), mask = Buffer.alloc(16), miss = a.fresh('fibname');
      bytes.write(p.name, 'latin1');
      mask.fill(0xff, 0, Math.min(16, p.name.length + (p.wildcard ? 0 : 1)));
      for (const o of [0, 8]) {
        const w = mask.readBigUInt64LE(o);
        if (w === 0n) continue;
        a.ldx(8, R1, R10, l.scratch + o);
        if (w !== 0xffffffffffffffffn) a.ldImm64(R2, w).alu64('and', R1, R2);
        a.ldImm64(R2, bytes.readBigUInt64LE(o)).jmpReg('jne', R1, R2, miss);
      }
      a.ja(matched).label(miss);
    }
  }
  if (m.invert) { const out = a.fresh('fibout'); a.ja(out).label(matched).ja(l.next).label(out); } else a.ja(l.next).label(matched);
}
