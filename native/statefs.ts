/**
 * Where bpftables keeps its kernel objects: a bpffs mounted at
 * /run/bpftables (BPFTABLES_STATE_DIR overrides), one directory per network
 * namespace (named after the namespace's inode) and address family. /run is
 * used because `ip netns exec` remounts /sys, hiding /sys/fs/bpf; other
 * mounts stay visible there.
 */
import fs from 'node:fs';
import path from 'node:path';
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
 * True when this process runs in a mount namespace other than its oldest
 * readable ancestor's, as under `ip netns exec`: a bpffs mounted here would
 * vanish with the process.
 */
function inTransientMountNs(): boolean {
  const self = mntNs('self');
  let pid = process.ppid;
  let top: string | undefined;
  for (let hops = 0; pid > 1 && hops < 64; hops++) {
    const ns = mntNs(pid);
    if (ns) top = ns;
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch { break; }
  }
  return top !== undefined && self !== undefined && top !== self;
}

/** Make sure the state bpffs is mounted; returns its path. */
export function ensureStateRoot(): string {
  const root = stateRoot();
  if (isBpffs(root)) return root;
  if (inTransientMountNs()) {
    throw new StateFsError(
      `${root} is not a mounted bpf filesystem in this mount namespace, and one mounted here would vanish when this ` +
      `process exits (as under 'ip netns exec'). Run any bpftables command (e.g. 'bpftables status') once outside it, ` +
      `or mount it: mount -t bpf bpf ${root}`);
  }
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  mount('bpf', root, 'bpf', 0);
  fs.chmodSync(root, 0o700);
  return root;
}

/** Identity of the current network namespace. */
export function netnsKey(): string {
  return `net-${fs.statSync('/proc/self/ns/net').ino}`;
}

/** The state directory of this namespace and family; created on demand when `create`. */
export function familyDir(family: 4 | 6, create: boolean): string | undefined {
  const root = create ? ensureStateRoot() : stateRoot();
  if (!create && !isBpffs(root)) return undefined;
  const dir = path.join(root, netnsKey(), family === 4 ? 'ipv4' : 'ipv6');
  if (fs.existsSync(dir)) return dir;
  if (!create) return undefined;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
