/**
 * rtnetlink, the little bpftables needs for -m addrtype: the IPv4 local
 * routing table (what the kernel's inet_dev_addr_type consults), the IPv6
 * routes of every table and the IPv6 addresses (what its IPv6 route lookup
 * and nf_ipv6_chk_addr see), and a socket that wakes up when routes,
 * addresses or links change.
 */
import { close, ffi, libcFn, recv, sendto, socket, SysError } from './libc';

const AF_NETLINK = 16, NETLINK_ROUTE = 0, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, SOCK_NONBLOCK = 0o4000;
const AF_INET = 2, AF_INET6 = 10;
const RTM_GETADDR = 22, RTM_GETROUTE = 26, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_MULTIPATH = 9, RTA_TABLE = 15;
const IFA_ADDRESS = 1, IFA_FLAGS = 8, IFA_F_TENTATIVE = 0x40;
export const RT_TABLE_LOCAL = 255;
/** legacy group bits: links, IPv4 addresses and routes, IPv6 addresses and routes */
const GROUPS = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

const _bind = libcFn('int bind(int, void *, uint32_t)');
const _ifIndexToName = libcFn('char *if_indextoname(unsigned int, _Out_ char *)');

export interface Route4 { dst: number; len: number; type: number; dev: string }
/** An IPv6 route: destination (16 bytes), prefix length, RTN_* type, its nexthops' devices (names, indexes), whether one has a gateway. */
export interface Route6 { table: number; dst: Buffer; len: number; type: number; devs: string[]; ifindexes: number[]; gateway: boolean }
/** An IPv4 route of any table: destination (host order), prefix length, TOS, metric, RTN_* type, its nexthops' device indexes and names. */
export interface RouteAll4 { table: number; dst: number; len: number; tos: number; priority: number; type: number; ifindexes: number[]; devs: string[] }
/** An IPv6 address and its device (tentative: still in duplicate address detection). */
export interface Addr6 { dev: string; addr: Buffer; tentative: boolean }

function ifName(index: number): string {
  const buf = Buffer.alloc(16);
  return _ifIndexToName(index, buf) ? buf.toString('latin1').replace(/\0.*$/s, '') : '';
}

/** Attributes of one netlink message body from `from` to `to`: type → [offset, length] of the payload. */
function* attributes(buf: Buffer, from: number, to: number): Generator<[number, number, number]> {
  for (let a = from; a + 4 <= to;) {
    const alen = buf.readUInt16LE(a), atype = buf.readUInt16LE(a + 2) & 0x3fff;
    if (alen < 4) return;
    yield [atype, a + 4, alen - 4];
    a += (alen + 3) & ~3;
  }
}

/** A dump request of `type` for `family` (`headerLen` bytes of family header); `each` sees every message's body. */
function dump(type: number, family: number, headerLen: number, each: (buf: Buffer, body: number, end: number) => void): void {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const req = Buffer.alloc(16 + headerLen);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(type, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req[16] = family;
    const sa = Buffer.alloc(12);
    sa.writeUInt16LE(AF_NETLINK, 0);
    sendto(fd, req, 0, sa);
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = recv(fd, buf, 0);
      if (n < 0) throw new SysError('netlink recv', -n);
      for (let o = 0; o + 16 <= n;) {
        const len = buf.readUInt32LE(o), mtype = buf.readUInt16LE(o + 4);
        if (len < 16 || mtype === NLMSG_DONE) return;
        if (mtype === NLMSG_ERROR) {
          const err = buf.readInt32LE(o + 16);
          if (err) throw new SysError('netlink dump', -err);
          return;
        }
        each(buf, o + 16, o + len);
        o += (len + 3) & ~3;
      }
    }
  } finally { close(fd); }
}

/** The IPv4 routes of routing table `table` (addresses host order). */
export function dumpRoutes4(table = RT_TABLE_LOCAL): Route4[] {
  const routes: Route4[] = [];
  dump(RTM_GETROUTE, AF_INET, 12, (buf, r, end) => {
    let tableId = buf[r + 4]!;
    const rt: Route4 = { dst: 0, len: buf[r + 1]!, type: buf[r + 7]!, dev: '' };
    for (const [type, at] of attributes(buf, r + 12, end)) {
      if (type === RTA_DST) rt.dst = buf.readUInt32BE(at);
      else if (type === RTA_OIF) rt.dev = ifName(buf.readUInt32LE(at));
      else if (type === RTA_TABLE) tableId = buf.readUInt32LE(at);
    }
    if (tableId === table) routes.push(rt);
  });
  return routes;
}

/** An RTA_MULTIPATH attribute's nexthops (struct rtnexthop { u16 len; u8 flags, hops; s32 ifindex } and its own attributes): device index, has a gateway. */
function* nexthops(buf: Buffer, at: number, len: number): Generator<[number, boolean]> {
  for (let h = at; h + 8 <= at + len;) {
    const hlen = buf.readUInt16LE(h);
    if (hlen < 8) return;
    let gateway = false;
    for (const [ntype] of attributes(buf, h + 8, h + hlen)) if (ntype === RTA_GATEWAY) gateway = true;
    yield [buf.readInt32LE(h + 4), gateway];
    h += (hlen + 3) & ~3;
  }
}

/** Every IPv4 route of every table, with its nexthops (nft's fib oif reads the lookup's device). */
export function dumpRoutesAll4(): RouteAll4[] {
  const routes: RouteAll4[] = [];
  dump(RTM_GETROUTE, AF_INET, 12, (buf, r, end) => {
    const rt: RouteAll4 = { table: buf[r + 4]!, dst: 0, len: buf[r + 1]!, tos: buf[r + 3]!, priority: 0, type: buf[r + 7]!, ifindexes: [], devs: [] };
    for (const [type, at, len] of attributes(buf, r + 12, end)) {
      if (type === RTA_DST) rt.dst = buf.readUInt32BE(at);
      else if (type === RTA_OIF) rt.ifindexes.push(buf.readUInt32LE(at));
      else if (type === RTA_PRIORITY) rt.priority = buf.readUInt32LE(at);
      else if (type === RTA_TABLE) rt.table = buf.readUInt32LE(at);
      else if (type === RTA_MULTIPATH) for (const [ifindex] of nexthops(buf, at, len)) rt.ifindexes.push(ifindex);
    }
    rt.devs = rt.ifindexes.map(ifName);
    routes.push(rt);
  });
  return routes;
}

/** Every IPv6 route of every table (the route cache's clones are not dumped). */
export function dumpRoutes6(): Route6[] {
  const routes: Route6[] = [];
  dump(RTM_GETROUTE, AF_INET6, 12, (buf, r, end) => {
    const rt: Route6 = { table: buf[r + 4]!, dst: Buffer.alloc(16), len: buf[r + 1]!, type: buf[r + 7]!, devs: [], ifindexes: [], gateway: false };
    for (const [type, at, len] of attributes(buf, r + 12, end)) {
      if (type === RTA_DST) buf.copy(rt.dst, 0, at, at + 16);
      else if (type === RTA_OIF) { rt.ifindexes.push(buf.readUInt32LE(at)); rt.devs.push(ifName(buf.readUInt32LE(at))); }
      else if (type === RTA_GATEWAY) rt.gateway = true;
      else if (type === RTA_TABLE) rt.table = buf.readUInt32LE(at);
      else if (type === RTA_MULTIPATH) {
        for (const [ifindex, gateway] of nexthops(buf, at, len)) {
          rt.ifindexes.push(ifindex);
          rt.devs.push(ifName(ifindex));
          rt.gateway ||= gateway;
        }
      }
    }
    routes.push(rt);
  });
  return routes;
}

/** Every IPv6 address with its device. */
export function dumpAddrs6(): Addr6[] {
  const addrs: Addr6[] = [];
  dump(RTM_GETADDR, AF_INET6, 8, (buf, r, end) => {
    let flags = buf[r + 2]!;
    const a: Addr6 = { dev: ifName(buf.readUInt32LE(r + 4)), addr: Buffer.alloc(16), tentative: false };
    for (const [type, at] of attributes(buf, r + 8, end)) {
      if (type === IFA_ADDRESS) buf.copy(a.addr, 0, at, at + 16);
      else if (type === IFA_FLAGS) flags = buf.readUInt32LE(at);
    }
    a.tentative = (flags & IFA_F_TENTATIVE) !== 0;
    addrs.push(a);
  });
  return addrs;
}

/** A non-blocking netlink socket subscribed to route, address and link changes (readable when something changed). */
export function routeChanges(): { fd: number; drain(): boolean; close(): void } {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(GROUPS, 8);
  if (Number(_bind(fd, sa, sa.length)) < 0) { close(fd); throw new SysError('netlink bind', ffi().koffi.errno()); }
  const buf = Buffer.alloc(1 << 16);
  return {
    fd,
    /** read what is pending; true when anything (or an overflow, ENOBUFS) says the routes changed */
    drain(): boolean {
      let any = false;
      for (;;) {
        const r = recv(fd, buf, 0x40 /* MSG_DONTWAIT */);
        if (r > 0 || r === -105) { any = true; continue; }
        return any;
      }
    },
    close: () => close(fd),
  };
}
