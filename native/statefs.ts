/**
 * Where bpftables keeps its kernel objects: a bpffs mounted at
 * /run/bpftables (BPFTABLES_STATE_DIR overrides), one directory per network
 * namespace (named after the namespace's inode) and address family. /run is
 * used because `ip netns exec` remounts /sys, hiding /sys/fs/bpf; other
 * mounts stay visible there. Pins live as long as the mount does, so the
 * mount is always made in a mount namespace that outlives the command.
 */
import fs from 'node:fs';
import path from 'node:path';
import { close, getsockopt, mount, socket } from './libc';
import { mapCreate, mapFreeze, mapLookup, MapType, mapUpdate, objGet, objPin, u32Key } from './bpf';

export const DEFAULT_STATE_ROOT = '/run/bpftables';
const BPF_FS_MAGIC = 0xcafe4a11;

export function stateRoot(): string {
  return process.env.BPFTABLES_STATE_DIR || DEFAULT_STATE_ROOT;
}

/** Is `dir` the root of a bpffs mount? */
function isBpffs(dir: string): boolean {
  try {
    const st = fs.statfsSync(dir);
    return Number(st.type) === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

export class StateFsError extends Error {}

/** Mount namespace id of a process, or undefined if unreadable. */
function mntNs(pid: number | 'self'): string | undefined {
  try { return fs.readlinkSync(`/proc/${pid}/ns/mnt`); } catch { return undefined; }
}

/**
 * When this process runs in a mount namespace other than its oldest readable
 * ancestor's (as under `ip netns exec`, which unshares one that dies with the
 * command), that ancestor's pid; else undefined.
 */
function persistentAncestor(): number | undefined {
  const self = mntNs('self');
  let pid = process.ppid;
  let top: { pid: number; ns: string } | undefined;
  for (let hops = 0; pid > 1 && hops < 64; hops++) {
    const ns = mntNs(pid);
    if (ns) top = { pid, ns };
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch { break; }
  }
  return top && self && top.ns !== self ? top.pid : undefined;
}

/**
 * The state filesystem as seen from here: the mount itself, or, in a
 * throwaway mount namespace that does not show it, the same mount reached
 * through the persistent ancestor's root (/proc/PID/root/...).
 */
function visibleRoot(): string | undefined {
  const root = stateRoot();
  if (isBpffs(root)) return root;
  const pid = persistentAncestor();
  const via = pid && path.join(`/proc/${pid}/root`, root);
  return via && isBpffs(via) ? via : undefined;
}

/**
 * Make sure the state bpffs is mounted and return the path to use. In a
 * throwaway mount namespace the bpffs is mounted in the persistent
 * ancestor's namespace instead (with nsenter), so the state outlives the command.
 */
export function ensureStateRoot(): string {
  const seen = visibleRoot();
  if (seen) return seen;
  const root = stateRoot();
  const pid = persistentAncestor();
  if (pid === undefined) {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    mount('bpf', root, 'bpf', 0);
    fs.chmodSync(root, 0o700);
    return root;
  }
  const via = path.join(`/proc/${pid}/root`, root);
  fs.mkdirSync(via, { recursive: true, mode: 0o700 });
  // node:child_process only here (rare): it brings streams, net and dgram, a third of a command's start-up
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', 'mount', '-t', 'bpf', '-o', 'mode=0700', 'bpf', root], { encoding: 'utf8' });
  if (r.status !== 0 || !isBpffs(via)) {
    throw new StateFsError(`${root} is not mounted here, and mounting it where it would outlive this command failed ` +
      `(${(r.stderr || r.error?.message || 'nsenter').trim()}); run 'bpftables init' outside 'ip netns exec' first`);
  }
  return via;
}

/** Identity of the current network namespace. */
export function netnsKey(): string {
  return `net-${fs.statSync('/proc/self/ns/net').ino}`;
}

/**
 * The namespace's cookie: unlike its inode number, which the kernel hands to
 * a new namespace once the old one is gone, it is never reused.
 */
export function netnsCookie(): bigint {
  // asked once per namespace and process: every state lookup compares it
  const key = netnsKey();
  const known = cookies.get(key);
  if (known !== undefined) return known;
  const fd = socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */ | 0o2000000, 0);
  try {
    const cookie = getsockopt(fd, 1 /* SOL_SOCKET */, 71 /* SO_NETNS_COOKIE */, 8).readBigUInt64LE(0);
    cookies.set(key, cookie);
    return cookie;
  } finally { close(fd); }
}
const cookies = new Map<string, bigint>();

const COOKIE_PIN = 'netns_cookie';

function storedCookie(dir: string): bigint | undefined {
  const fd = objGet(path.join(dir, COOKIE_PIN));
  if (fd < 0) return undefined;
  try {
    const v = Buffer.alloc(8);
    return mapLookup(fd, u32Key(0), v) ? v.readBigUInt64LE(0) : undefined;
  } finally { close(fd); }
}

function storeCookie(dir: string): void {
  const fd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'bpft_netns' });
  try {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(netnsCookie());
    mapUpdate(fd, u32Key(0), v);
    mapFreeze(fd);
    objPin(fd, path.join(dir, COOKIE_PIN));
  } finally { close(fd); }
}

/** Unpin everything below a namespace directory (links first) and remove it. */
export function removeNamespaceDir(dir: string): void {
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  for (const e of entries) if (e.isDirectory()) removeNamespaceDir(path.join(dir, e.name));
  const files = entries.filter((e) => !e.isDirectory()).map((e) => e.name)
    .sort((a, b) => Number(b.startsWith('link_')) - Number(a.startsWith('link_')));
  for (const f of files) fs.rmSync(path.join(dir, f), { force: true });
  fs.rmdirSync(dir);
}

/**
 * This namespace's directory. A directory left by a dead namespace whose
 * inode number this one got (its cookie differs) is removed first: its pins
 * belong to hooks of a namespace that no longer exists.
 */
function namespaceDir(root: string, create: boolean): string | undefined {
  const dir = path.join(root, netnsKey());
  if (fs.existsSync(dir)) {
    // once this process has seen its cookie there, the directory stays this namespace's while it exists:
    // the namespace lives as long as the process is in it, so no other one can have its inode number
    if (ownDirs.has(dir)) return dir;
    const stored = storedCookie(dir);
    if (stored === netnsCookie()) { ownDirs.add(dir); return dir; }
    removeNamespaceDir(dir);
  }
  if (!create) return undefined;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  storeCookie(dir);
  ownDirs.add(dir);
  return dir;
}
/** Namespace directories whose cookie this process found to be its namespace's (or stored itself). */
const ownDirs = new Set<string>();

/** The state directory of this namespace and family; created on demand when `create`. */
export function familyDir(family: 4 | 6, create: boolean): string | undefined {
  return stateSubdir(family === 4 ? 'ipv4' : 'ipv6', create);
}

/** A directory of this namespace's state (ipv4 and ipv6: the iptables tables; nft: the nft ruleset). */
export function stateSubdir(name: 'ipv4' | 'ipv6' | 'nft', create: boolean): string | undefined {
  const root = create ? ensureStateRoot() : visibleRoot();
  if (root === undefined) return undefined;
  const ns = namespaceDir(root, create);
  if (!ns) return undefined;
  const dir = path.join(ns, name);
  if (fs.existsSync(dir)) return dir;
  if (!create) return undefined;
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/** This namespace's state directory, created on demand when `create`. */
export function namespaceStateDir(create: boolean): string | undefined {
  const root = create ? ensureStateRoot() : visibleRoot();
  return root === undefined ? undefined : namespaceDir(root, create);
}

/** This namespace's state directory if there is one (and it is its own, not a dead namespace's). */
export function currentNamespaceDir(): string | undefined {
  const root = visibleRoot();
  return root === undefined ? undefined : namespaceDir(root, false);
}

/** Is `pid` a `bpftables logd`? Its hold on its namespace does not keep the namespace's state alive. */
export function isLogdProcess(pid: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    return argv.includes('logd') && argv.some((a) => a.endsWith('bpftables'));
  } catch { return false; }
}

/**
 * Inode numbers of the network namespaces that exist: held by a process, an
 * open fd or a bind mount. Processes `ignore` accepts do not count (logd
 * holds its namespace only to serve it).
 */
export function liveNetnsInodes(opts: { ignore?: (pid: number) => boolean } = {}): Set<number> {
  const live = new Set<number>();
  const note = (link: string): void => {
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (m) live.add(Number(m[1]));
  };
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (opts.ignore?.(Number(pid))) continue;
    try { note(fs.readlinkSync(`/proc/${pid}/ns/net`)); } catch { /* gone or not ours to read */ }
    try {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try { note(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch { /* closed meanwhile */ }
      }
    } catch { /* not readable */ }
  }
  // bind mounts of namespaces (ip netns, container runtimes): nsfs entries in the mount table
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const m = / (net:\[\d+\]) /.exec(line);
    if (m) note(m[1]!);
  }
  return live;
}

/** Remove the state of namespaces that no longer exist; returns the directories removed. */
export function collectGarbage(): string[] {
  const root = visibleRoot();
  if (!root) return [];
  const live = liveNetnsInodes({ ignore: isLogdProcess });
  const removed: string[] = [];
  for (const d of fs.readdirSync(root)) {
    const m = /^net-(\d+)$/.exec(d);
    if (!m || live.has(Number(m[1]))) continue;
    removeNamespaceDir(path.join(root, d));
    removed.push(d);
  }
  return removed;
}
