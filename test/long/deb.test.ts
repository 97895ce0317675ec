/**
 * The .deb (npm run package:deb) on a Debian that never saw this checkout:
 * a minimal Debian 13 root built with debootstrap from Debian's own packages
 * (with nodejs, which the package depends on), the package installed there
 * with dpkg, and its commands run inside with chroot, in a throwaway network
 * namespace: bpftables version, iptables-restore --test, a restore and
 * iptables-save, the man page and completion; then dpkg -r leaves nothing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { prepareState, REPO, requireKernel, tempDir } from '../helpers/env';
import { throwawayNamespace } from '../helpers/live';

const MIRROR = process.env.BPFTABLES_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const run = (cmd: string, args: string[], input?: string): { status: number | null; out: string } => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 26, timeout: 600_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
};

t.test('the .deb installs on a fresh Debian and its commands work there', async (t) => {
  if (!requireKernel(t, ['debootstrap', 'dpkg-deb', 'unshare', 'chroot'])) return;
  prepareState();
  const built = run(process.execPath, [path.join(REPO, 'scripts', 'package-deb.js')]);
  t.equal(built.status, 0, `package:deb builds ${built.out}`);
  const deb = built.out.trim().split('\n').pop()!;
  t.ok(fs.existsSync(deb), deb);
  const info = run('dpkg-deb', ['-f', deb, 'Depends', 'Architecture']).out;
  t.match(info, /Depends: nodejs \(>= 20\)/, 'it depends on nodejs (>= 20)');

  const dir = tempDir(t, 'bpft-debroot-');
  const root = path.join(dir, 'root');
  const boot = run('debootstrap', ['--variant=minbase', '--include=nodejs', 'trixie', root, MIRROR]);
  t.equal(boot.status, 0, `debootstrap trixie with nodejs from ${MIRROR}${boot.status ? `: ${boot.out.slice(-2000)}` : ''}`);
  if (boot.status !== 0) return;
  fs.copyFileSync(deb, path.join(root, 'tmp', 'bpftables.deb'));
  const installed = run('chroot', [root, 'env', '-u', 'NODE_OPTIONS', 'dpkg', '-i', '/tmp/bpftables.deb']);
  t.equal(installed.status, 0, `dpkg -i inside: ${installed.out}`);

  // inside: the host's /sys (BTF, bpf), /proc, /dev and the state filesystem, in a mount namespace of its own
  const ns = throwawayNamespace(t, 'deb');
  const inside = (script: string, input?: string): { status: number | null; out: string } => run('ip', ['netns', 'exec', ns, 'unshare', '-m', 'sh', '-c',
    `mount --make-rprivate / && mount --bind /sys ${root}/sys && mount -t proc proc ${root}/proc && mount --bind /dev ${root}/dev && ` +
    `mkdir -p ${root}/run/bpftables && mount --bind /run/bpftables ${root}/run/bpftables && exec chroot ${root} env -u NODE_OPTIONS sh -c '${script}'`], input);
  const version = inside('bpftables version');
  t.match(version, { status: 0, out: /^bpftables \d+\.\d+\.\d+ \(iptables v1\.8\.11 \(bpftables\)\)/ }, `bpftables version: ${version.out}`);
  const demo = fs.readFileSync(path.join(REPO, 'fixtures', 'demo.rules'), 'utf8');
  const test = inside('/usr/lib/bpftables/bin/iptables-restore --test', demo);
  t.equal(test.status, 0, `iptables-restore --test (the verifier takes every program): ${test.out}`);
  const restore = inside('/usr/lib/bpftables/bin/iptables-restore', demo);
  t.equal(restore.status, 0, `iptables-restore: ${restore.out}`);
  const saved = inside('/usr/lib/bpftables/bin/iptables-save');
  t.match(saved.out, /\*filter\n:INPUT DROP \[0:0\][\s\S]*-A WEB -m ttl --ttl-gt 1 -j ACCEPT\nCOMMIT/, 'iptables-save prints the ruleset back');
  t.equal(inside('test -f /usr/share/man/man8/bpftables.8.gz && test -f /usr/share/bash-completion/completions/bpftables && test -f /lib/systemd/system/bpftables-restore.service').status, 0,
    'the man page, completion and units are in place');
  inside('bpftables flush');
  const removed = run('chroot', [root, 'dpkg', '-r', 'bpftables']);
  t.equal(removed.status, 0, `dpkg -r: ${removed.out}`);
  t.notOk(fs.existsSync(path.join(root, 'usr', 'lib', 'bpftables')) || fs.existsSync(path.join(root, 'usr', 'sbin', 'bpftables')), 'and removing it leaves nothing of it');
});
