/**
 * `bpftables logd`: the companion of the hook programs for what they cannot
 * do in the kernel. It drains the namespace's events ring buffer
 * (cgen/events.ts) and
 *   - LOG: writes the kernel LOG target's line to the kernel log (/dev/kmsg,
 *     at the rule's level), under the same condition as the kernel (outside
 *     the initial namespace only with net.netfilter.nf_log_all_netns=1);
 *   - REJECT: sends the kernel REJECT target's answer (TCP reset or ICMP
 *     error) through a raw socket, under the kernel's ICMP rate limits;
 *   - keeps the mirror of the local routing table that -m addrtype reads
 *     current, on every route change notification.
 * One logd per network namespace, registered in /run/bpftables-logd; the
 * engine starts one whenever it installs a table with LOG or REJECT rules.
 * It leaves when its namespace is gone (nothing but logd holds it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EVENTS_BYTES } from '../cgen/events';
import { close, mapInfo, mapLookup, mapUpdate, u32Key } from '../native/bpf';
import { epollAdd, epollFor, epollWait, routeSource, sendto, socket } from '../native/libc';
import { routeChanges } from '../native/rtnl';
import { RingBuffer } from '../native/ringbuf';
import { isLogdProcess, liveNetnsInodes } from '../native/statefs';
import { addrtypeMapFd, EVENTS_TOLD_PIN, eventsLostMapFd, eventsMapFd, fibRouteMapFd, syncAddrtype, syncFibRoutes } from '../native/nsmaps';
import { REJECT_TYPES } from '../xlate/targets';
import { parseIpv4, parseIpv6 } from '../xlate/addr';
import { type EventRecord, logLine, parseRecord } from './logtext';
import { type Answer, IcmpRateLimit, type RejectEnv, rejectAnswer } from './rejectpkt';
import { log } from './log';
import { expectWork } from './jit';

export const LOGD_DIR = '/run/bpftables-logd';

const netnsIno = (): number => fs.statSync('/proc/self/ns/net').ino;
const pidFile = (ino: number): string => path.join(process.env.BPFTABLES_LOGD_DIR || LOGD_DIR, `net-${ino}`);

/** Is `pid` a logd serving namespace `ino`? */
function isLogd(pid: number, ino: number): boolean {
  try {
    return fs.statSync(`/proc/${pid}/ns/net`).ino === ino && isLogdProcess(pid);
  } catch { return false; }
}

/** The pid of this namespace's running logd, if any. */
export function runningLogd(): number | undefined {
  const ino = netnsIno();
  try {
    const pid = Number(fs.readFileSync(pidFile(ino), 'utf8').trim());
    return pid > 0 && isLogd(pid, ino) ? pid : undefined;
  } catch { return undefined; }
}

/**
 * Make sure this namespace has a logd, starting one (detached) if not, and
 * wait until it is registered so that the answers of the new rules are
 * not late. Records queued before it reads them wait in the ring buffer.
 */
export function ensureLogd(): void {
  if (runningLogd() !== undefined) return;
  const bin = path.join(__dirname, '..', '..', 'bin', 'bpftables');
  // BPFTABLES_LOGD_STDERR: a file for the started logd's messages (they go nowhere otherwise)
  const errFile = process.env.BPFTABLES_LOGD_STDERR;
  const errFd = errFile ? fs.openSync(errFile, 'a', 0o600) : 'ignore';
  // node:child_process only when a logd is started: it brings streams, net and dgram, a third of a command's start-up
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const child = spawn(process.execPath, [bin, 'logd'], { detached: true, stdio: ['ignore', 'ignore', errFd], env: process.env });
  if (typeof errFd === 'number') fs.closeSync(errFd);
  child.unref();
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    if (runningLogd() !== undefined) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  log.warn('bpftables logd did not start within 3 s: LOG lines and REJECT answers wait in the ring buffer until it runs');
}

/** Register this process as the namespace's logd; false when another one runs. */
function register(): boolean {
  const ino = netnsIno();
  const file = pidFile(ino);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  for (let tries = 0; tries < 3; tries++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (pid > 0 && pid !== process.pid && isLogd(pid, ino)) return false;
      fs.rmSync(file, { force: true }); // a dead logd's registration
    }
  }
  return false;
}

/** The namespace's addresses, for REJECT's source choice and refusals. */
function addressEnv(): { local: Set<string>; broadcast: Set<string> } {
  const local = new Set<string>(), broadcast = new Set<string>(['ffffffff']);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4') {
        const addr = parseIpv4(a.address)!, mask = parseIpv4(a.netmask)!;
        local.add(addr.toString(16).padStart(8, '0'));
        if (mask !== 0xffffffff) broadcast.add((((addr & mask) | ~mask) >>> 0).toString(16).padStart(8, '0'));
      } else {
        const w = parseIpv6(a.address.replace(/%.*$/, ''));
        if (w) local.add(w.map((x) => x.toString(16).padStart(8, '0')).join(''));
      }
    }
  }
  return { local, broadcast };
}

const sysctlNum = (key: string, dflt: number): number => {
  try { return Number(fs.readFileSync(`/proc/sys/${key}`, 'utf8').trim()); } catch { return dflt; }
};

class Sender {
  private raw4 = -1;
  private raw6 = -1;
  send(a: Answer): void {
    if (a.family === 4) {
      if (this.raw4 < 0) this.raw4 = socket(2, 3 /* SOCK_RAW */ | 0o2000000, 255 /* IPPROTO_RAW */);
      const sa = Buffer.alloc(16);
      sa.writeUInt16LE(2, 0);
      a.dest.copy(sa, 4);
      sendto(this.raw4, a.packet, 0, sa);
    } else {
      if (this.raw6 < 0) this.raw6 = socket(10, 3 | 0o2000000, 255);
      const sa = Buffer.alloc(28);
      sa.writeUInt16LE(10, 0);
      a.dest.copy(sa, 8);
      sendto(this.raw6, a.packet, 0, sa);
    }
  }
}

/** Run logd in this namespace until it is gone (or forever with `foreground` and a live namespace). */
export function runLogd(): number {
  // it runs until its namespace goes: its hot code is worth optimizing
  expectWork(Number.POSITIVE_INFINITY, 0, 'the log daemon');
  if (!register()) {
    log.info('bpftables logd: another logd serves this namespace');
    return 0;
  }
  const ino = netnsIno();
  const initNs = (() => { try { return fs.statSync('/proc/1/ns/net').ino === ino; } catch { return true; } })();
  const sender = new Sender();
  let rb: RingBuffer | undefined;
  let rbFd = -1;
  let rbId = 0;
  // what answers and log lines depend on in the namespace (addresses, sysctls), read again once a second
  const readView = (): { env: RejectEnv; logging: boolean } => {
    const addrs = addressEnv();
    return {
      env: {
        isLocal: (a) => addrs.local.has(a.toString('hex')),
        isBroadcast: (a) => addrs.broadcast.has(a.toString('hex')),
        sourceFor: routeSource,
        ttl: sysctlNum('net/ipv4/ip_default_ttl', 64),
        hopLimit: sysctlNum('net/ipv6/conf/default/hop_limit', 64),
      },
      logging: initNs || sysctlNum('net/netfilter/nf_log_all_netns', 0) === 1,
    };
  };
  let view = readView();
  let lastCheck = 0;
  let lostWarned = 0;
  const limits = {
    4: new IcmpRateLimit(sysctlNum('net/ipv4/icmp_ratelimit', 1000), sysctlNum('net/ipv4/icmp_msgs_per_sec', 1000), sysctlNum('net/ipv4/icmp_msgs_burst', 50)),
    6: new IcmpRateLimit(sysctlNum('net/ipv6/icmp/ratelimit', 1000), sysctlNum('net/ipv4/icmp_msgs_per_sec', 1000), sysctlNum('net/ipv4/icmp_msgs_burst', 50)),
  };
  const handle = (buf: Buffer): void => {
    let r: EventRecord;
    try { r = parseRecord(buf); } catch (e) { log.warn({ err: e }, 'bpftables logd: bad record'); return; }
    if (r.lost && Date.now() - lostWarned > 10_000) {
      lostWarned = Date.now();
      writeKmsg(4, 'bpftables: more LOG/REJECT rules matched one packet than a hook can record (8); the later ones were skipped');
    }
    if (r.kind === 'log') {
      if (!view.logging) return;
      writeKmsg(r.level, logLine(r));
      return;
    }
    const spec = REJECT_TYPES[r.reject];
    if (!spec) return;
    const e = view.env;
    const ans = rejectAnswer(r, spec, e);
    if (!ans) return;
    if (ans.icmp && !limits[ans.family].allow(ans.dest, e.isLocal(ans.dest))) return;
    try { sender.send(ans); } catch (err) { log.warn({ err }, 'bpftables logd: sending the REJECT answer failed'); }
  };
  // /dev/kmsg limits each open file to 10 lines per 5 s (printk_devkmsg=ratelimit); the kernel's LOG
  // target has no such limit (rules use -m limit for that), so each line gets a fresh open
  const writeKmsg = (level: number, text: string): void => {
    let fd = -1;
    try {
      fd = fs.openSync('/dev/kmsg', 'w');
      fs.writeSync(fd, `<${level}>${text}\n`);
    } catch (err) {
      log.warn({ err }, 'bpftables logd: cannot write to /dev/kmsg');
    } finally { if (fd >= 0) fs.closeSync(fd); }
  };
  const reopen = (): void => {
    const fd = eventsMapFd(false, EVENTS_BYTES);
    if (fd === undefined) { if (rb) { rb.close(); close(rbFd); rb = undefined; rbFd = -1; rbId = 0; } return; }
    const info = mapInfo(fd);
    if (info.id === rbId) { close(fd); return; }
    if (rb) { rb.drain(handle); rb.close(); close(rbFd); }
    rb = new RingBuffer(fd, info.maxEntries);
    rbFd = fd; rbId = info.id;
    epollAdd(ep, fd);
  };
  // the routing mirrors for -m addrtype and nft's fib follow route, address and link changes
  const routes = routeChanges();
  const ep = epollFor([routes.fd]);
  const syncRoutes = (): void => {
    for (const family of [4, 6] as const) {
      for (const [open, sync] of [[addrtypeMapFd, syncAddrtype], [fibRouteMapFd, syncFibRoutes]] as const) {
        const fd = open(family, false);
        if (fd === undefined) continue;
        try { sync(family, fd); } catch (err) { log.warn({ err, family }, 'bpftables logd: cannot mirror the routing tables'); } finally { close(fd); }
      }
    }
  };
  syncRoutes();
  // records the ring buffer had no room for: said once a second at most, each loss once
  const reportLost = (): void => {
    const fd = eventsLostMapFd(false);
    if (fd === undefined) return;
    const toldFd = eventsLostMapFd(true, EVENTS_TOLD_PIN)!;
    try {
      const lost = Buffer.alloc(8), told = Buffer.alloc(8);
      mapLookup(fd, u32Key(0), lost);
      mapLookup(toldFd, u32Key(0), told);
      const n = lost.readBigUInt64LE(0) - told.readBigUInt64LE(0);
      if (n <= 0n) return;
      writeKmsg(4, `bpftables: ${n} LOG/REJECT records lost: the ring buffer was full (logd too slow or not running)`);
      mapUpdate(toldFd, u32Key(0), lost);
    } finally { close(fd); close(toldFd); }
  };
  try {
    for (;;) {
      const now = Date.now();
      const check = now - lastCheck >= 1000;
      if (check) {
        lastCheck = now;
        // leave with the namespace: nothing but logd processes hold it any more
        if (!liveNetnsInodes({ ignore: isLogdProcess }).has(ino)) return 0;
        view = readView();
        reopen();
      }
      if (routes.drain()) syncRoutes();
      if (rb) rb.drain(handle);
      // after the records that fitted: the report is the newest line, the last the kernel log would drop
      if (check) reportLost();
      epollWait(ep, 500);
    }
  } finally {
    if (rb) { rb.close(); close(rbFd); }
    routes.close();
    close(ep);
    try { if (Number(fs.readFileSync(pidFile(ino), 'utf8').trim()) === process.pid) fs.rmSync(pidFile(ino)); } catch { /* gone */ }
  }
}
