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
import { spawnSync } from 'node:child_process';
import { mount } from './libc';

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

/** The state directory of this namespace and family; created on demand when `create`. */
export function familyDir(family: 4 | 6, create: boolean): string | undefined {
  const root = create ? ensureStateRoot() : visibleRoot();
  if (root === undefined) return undefined;
  const dir = path.join(root, netnsKey(), family === 4 ? 'ipv4' : 'ipv6');
  if (fs.existsSync(dir)) return dir;
  if (!create) return undefined;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
