/**
 * Throwaway hosts in network namespaces, for the demo and the kernel tests:
 * creation, commands inside them (argv only, never a shell string), and raw
 * sockets opened inside a namespace from this process (setns on the main
 * thread, then back).
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import { CLONE_NEWNET, close, recv, sendto, setns, setsockopt, socket, SysError } from '../native/libc';
import { collectGarbage } from '../native/statefs';

const AF_INET = 2, AF_INET6 = 10, AF_PACKET = 17, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000, IPPROTO_RAW = 255, MSG_DONTWAIT = 0x40;

let homeNs: number | undefined;

/** Run `fn` with this thread in namespace `ns` (sockets created inside stay there). */
export function inNetns<T>(ns: string, fn: () => T): T {
  homeNs ??= fs.openSync('/proc/self/ns/net', 'r');
  const fd = fs.openSync(`/run/netns/${ns}`, 'r');
  try {
    setns(fd, CLONE_NEWNET);
    try { return fn(); } finally { setns(homeNs, CLONE_NEWNET); }
  } finally { fs.closeSync(fd); }
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsExec(ns: string, cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { input, encoding: 'utf8', env: env ?? process.env, timeout: 120_000 });
}

export function nsExecOk(ns: string, cmd: string, args: string[], input?: string): string {
  const r = nsExec(ns, cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${ns} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export function sysctl(ns: string, key: string, value: string): void {
  inNetns(ns, () => fs.writeFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, value));
}

function sockaddrIn(addr: string): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  addr.split('.').forEach((p, i) => { b[4 + i] = Number(p); });
  return b;
}

/**
 * Send a complete IPv4 packet (header included) from namespace `ns`.
 * Returns false when the sender's own OUTPUT hook dropped it (EPERM).
 */
export function sendRaw(ns: string, packet: Buffer): boolean {
  const dst = [16, 17, 18, 19].map((i) => packet[i]).join('.');
  const fd = inNetns(ns, () => socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  try {
    // broadcast destinations too (SO_BROADCAST)
    const one = Buffer.alloc(4); one.writeInt32LE(1);
    setsockopt(fd, 1 /* SOL_SOCKET */, 6 /* SO_BROADCAST */, one);
    sendto(fd, packet, 0, sockaddrIn(dst));
    return true;
  } catch (e) {
    if (e instanceof SysError && e.errno === 1) return false;
    throw e;
  } finally { close(fd); }
}

/**
 * Send a complete IPv6 packet (header and extension headers included: raw
 * IPPROTO_RAW sockets are header-including in IPv6 too) from namespace `ns`.
 * Returns false when the sender's own OUTPUT hook dropped it (EPERM).
 */
export function sendRaw6(ns: string, packet: Buffer): boolean {
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  packet.copy(sa, 8, 24, 40);
  const fd = inNetns(ns, () => socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  try {
    sendto(fd, packet, 0, sa);
    return true;
  } catch (e) {
    if (e instanceof SysError && e.errno === 1) return false;
    throw e;
  } finally { close(fd); }
}

/**
 * A receiver in a namespace. kind 'local': a raw IP socket of one protocol,
 * which sees what passed the INPUT hook and was delivered locally. kind
 * 'wire': a packet socket, which sees every IPv4 packet arriving on the
 * namespace's interfaces (what a neighbour forwarded or emitted), fragments too;
 * 'wire6' the same for IPv6 packets.
 */
export class RawReceiver {
  private readonly fd: number;
  constructor(ns: string, proto: number, kind: 'local' | 'wire' | 'wire6' = 'local') {
    this.fd = inNetns(ns, () => kind === 'local'
      ? socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto)
      : socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, kind === 'wire' ? 0x0008 /* htons(ETH_P_IP) */ : 0xdd86 /* htons(ETH_P_IPV6) */));
  }
  drain(): Buffer[] {
    const out: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = recv(this.fd, buf, MSG_DONTWAIT);
      if (n <= 0) break;
      out.push(Buffer.from(buf.subarray(0, n)));
    }
    return out;
  }
  close(): void { close(this.fd); }
}

let seq = 0;
export function uniqueName(tag: string): string {
  return `bt${process.pid % 100000}${tag}${seq++}`;
}

/**
 * client (c0 10.0.1.2) — (r0 10.0.1.1) router (r1 10.0.2.1) — (s0 10.0.2.2) server,
 * and in IPv6 fd00:1::2 — fd00:1::1 router fd00:2::1 — fd00:2::2, with fixed MAC
 * addresses and permanent neighbour entries (no neighbour discovery, which
 * the rules under test could block). The same addresses in every instance,
 * so packets are identical across instances.
 */
export class Topology {
  readonly client: string;
  readonly router: string;
  readonly server: string;
  constructor(tag: string) {
    this.client = uniqueName(`${tag}c`);
    this.router = uniqueName(`${tag}r`);
    this.server = uniqueName(`${tag}s`);
    for (const n of [this.client, this.router, this.server]) ip('netns', 'add', n);
    const mac = { c0: '02:00:00:00:01:02', r0: '02:00:00:00:01:01', r1: '02:00:00:00:02:01', s0: '02:00:00:00:02:02' };
    ip('link', 'add', 'c0', 'address', mac.c0, 'netns', this.client, 'type', 'veth', 'peer', 'name', 'r0', 'address', mac.r0, 'netns', this.router);
    ip('link', 'add', 's0', 'address', mac.s0, 'netns', this.server, 'type', 'veth', 'peer', 'name', 'r1', 'address', mac.r1, 'netns', this.router);
    const cfg = (ns: string, dev: string, addr: string, addr6: string, peer: { addr6: string; mac: string }, gw?: string, gw6?: string): void => {
      nsExecOk(ns, 'ip', ['addr', 'add', addr, 'dev', dev]);
      nsExecOk(ns, 'ip', ['-6', 'addr', 'add', addr6, 'dev', dev, 'nodad']);
      nsExecOk(ns, 'ip', ['link', 'set', dev, 'up']);
      nsExecOk(ns, 'ip', ['link', 'set', 'lo', 'up']);
      nsExecOk(ns, 'ip', ['-6', 'neigh', 'replace', peer.addr6, 'lladdr', peer.mac, 'dev', dev, 'nud', 'permanent']);
      if (gw) nsExecOk(ns, 'ip', ['route', 'add', 'default', 'via', gw]);
      if (gw6) nsExecOk(ns, 'ip', ['-6', 'route', 'add', 'default', 'via', gw6]);
    };
    cfg(this.client, 'c0', '10.0.1.2/24', 'fd00:1::2/64', { addr6: 'fd00:1::1', mac: mac.r0 }, '10.0.1.1', 'fd00:1::1');
    cfg(this.router, 'r0', '10.0.1.1/24', 'fd00:1::1/64', { addr6: 'fd00:1::2', mac: mac.c0 });
    cfg(this.router, 'r1', '10.0.2.1/24', 'fd00:2::1/64', { addr6: 'fd00:2::2', mac: mac.s0 });
    cfg(this.server, 's0', '10.0.2.2/24', 'fd00:2::2/64', { addr6: 'fd00:2::1', mac: mac.r1 }, '10.0.2.1', 'fd00:2::1');
    sysctl(this.router, 'net.ipv4.ip_forward', '1');
    sysctl(this.router, 'net.ipv6.conf.all.forwarding', '1');
    for (const ns of [this.client, this.router, this.server]) {
      for (const dev of ['all', 'default']) sysctl(ns, `net.ipv4.conf.${dev}.rp_filter`, '0');
    }
    for (const [ns, dev] of [[this.router, 'r0'], [this.router, 'r1'], [this.client, 'c0'], [this.server, 's0']] as const) {
      sysctl(ns, `net.ipv4.conf.${dev}.rp_filter`, '0');
    }
  }
  destroy(): void {
    for (const n of [this.client, this.router, this.server]) {
      try { ip('netns', 'del', n); } catch { /* already gone */ }
    }
    // the namespaces are gone: so must be any bpftables state they had
    collectGarbage();
  }
}

export function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
