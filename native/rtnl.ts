/**
 * rtnetlink, the little bpftables needs: the IPv4 local routing table (the
 * table the kernel's addrtype match consults: local, broadcast and other
 * typed routes with their devices), and a socket that wakes up on route
 * changes.
 */
import koffi from 'koffi';
import { close, recv, sendto, socket, SysError } from './libc';

const AF_NETLINK = 16, NETLINK_ROUTE = 0, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, SOCK_NONBLOCK = 0o4000;
const RTM_GETROUTE = 26, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_DONE = 3, NLMSG_ERROR = 2;
const RTA_DST = 1, RTA_OIF = 4, RTA_TABLE = 15;
export const RT_TABLE_LOCAL = 255;
/** RTNLGRP_IPV4_ROUTE as a legacy group bit */
const GROUP_IPV4_ROUTE = 1 << 6;

const libc = koffi.load('libc.so.6');
const _bind = libc.func('int bind(int, void *, uint32_t)');
const _ifIndexToName = libc.func('char *if_indextoname(unsigned int, _Out_ char *)');

export interface Route4 { dst: number; len: number; type: number; dev: string }

function ifName(index: number): string {
  const buf = Buffer.alloc(16);
  return _ifIndexToName(index, buf) ? buf.toString('latin1').replace(/\0.*$/s, '') : '';
}

/** The IPv4 routes of routing table `table` (addresses host order). */
export function dumpRoutes4(table = RT_TABLE_LOCAL): Route4[] {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  try {
    const req = Buffer.alloc(28);
    req.writeUInt32LE(28, 0);
    req.writeUInt16LE(RTM_GETROUTE, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req[16] = 2; // AF_INET
    const sa = Buffer.alloc(12);
    sa.writeUInt16LE(AF_NETLINK, 0);
    sendto(fd, req, 0, sa);
    const routes: Route4[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = recv(fd, buf, 0);
      if (n < 0) throw new SysError('netlink recv', -n);
      for (let o = 0; o + 16 <= n;) {
        const len = buf.readUInt32LE(o), type = buf.readUInt16LE(o + 4);
        if (len < 16) return routes;
        if (type === NLMSG_DONE) return routes;
        if (type === NLMSG_ERROR) {
          const err = buf.readInt32LE(o + 16);
          if (err) throw new SysError('netlink route dump', -err);
          return routes;
        }
        const r = o + 16;
        let tableId = buf[r + 4]!;
        const rt: Route4 = { dst: 0, len: buf[r + 1]!, type: buf[r + 7]!, dev: '' };
        for (let a = r + 12; a + 4 <= o + len;) {
          const alen = buf.readUInt16LE(a), atype = buf.readUInt16LE(a + 2);
          if (alen < 4) break;
          if (atype === RTA_DST) rt.dst = buf.readUInt32BE(a + 4);
          else if (atype === RTA_OIF) rt.dev = ifName(buf.readUInt32LE(a + 4));
          else if (atype === RTA_TABLE) tableId = buf.readUInt32LE(a + 4);
          a += (alen + 3) & ~3;
        }
        if (tableId === table) routes.push(rt);
        o += (len + 3) & ~3;
      }
    }
  } finally { close(fd); }
}

/** A non-blocking netlink socket subscribed to IPv4 route changes (readable when something changed). */
export function routeChanges(): { fd: number; drain(): boolean; close(): void } {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(GROUP_IPV4_ROUTE, 8);
  if (Number(_bind(fd, sa, sa.length)) < 0) { close(fd); throw new SysError('netlink bind', koffi.errno()); }
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
