/**
 * `bpftables alternatives install|remove`: bpftables' iptables and ip6tables
 * registered with Debian's update-alternatives the way iptables-nft and
 * iptables-legacy register (groups `iptables` and `ip6tables`, each with its
 * -restore and -save as slaves). `install` registers at priority 5 (below
 * legacy's 10 and nft's 20, so "auto" keeps choosing those) and then selects
 * bpftables; `remove` unregisters it, and the group goes back to its best
 * remaining choice. `--root DIR` works inside another root (as
 * update-alternatives --root does), `--bindir DIR` names where the
 * executables are (default: this installation's bin/).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Io } from './cli';

const GROUPS = ['iptables', 'ip6tables'] as const;
const SBIN = '/usr/sbin';

export function alternativesMain(args: string[], io: Io): number {
  const op = args[0];
  let root: string | undefined, bindir = path.resolve(__dirname, '..', '..', 'bin'), priority = 5;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--root') root = args[++i];
    else if (a === '--bindir') bindir = args[++i] ?? bindir;
    else if (a === '--priority') priority = Number(args[++i]);
    else { io.err(`bpftables alternatives: unknown option ${a}\n`); return 2; }
  }
  if ((op !== 'install' && op !== 'remove') || !Number.isInteger(priority)) {
    io.err('usage: bpftables alternatives install|remove [--root DIR] [--bindir DIR] [--priority N]\n');
    return 2;
  }
  const ua = (argv: string[]): boolean => {
    const r = spawnSync('update-alternatives', [...(root ? ['--root', root] : []), ...argv], { encoding: 'utf8' });
    if (r.error) { io.err(`bpftables alternatives: update-alternatives: ${r.error.message}\n`); return false; }
    if (r.status !== 0) { io.err(r.stderr); return false; }
    return true;
  };
  for (const g of GROUPS) {
    const ours = path.join(bindir, g);
    if (op === 'install') {
      const slaves = ['restore', 'save'].flatMap((s) => ['--slave', `${SBIN}/${g}-${s}`, `${g}-${s}`, path.join(bindir, `${g}-${s}`)]);
      if (!ua(['--install', `${SBIN}/${g}`, g, ours, String(priority), ...slaves]) || !ua(['--set', g, ours])) return 1;
    } else if (!ua(['--remove', g, ours])) return 1;
  }
  io.out(op === 'install'
    ? `iptables and ip6tables are now bpftables' (${bindir}); switch back with \`bpftables alternatives remove\` or \`update-alternatives --auto iptables\`\n`
    : 'bpftables is no longer an alternative for iptables and ip6tables\n');
  return 0;
}
