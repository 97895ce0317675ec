/**
 * bpftables alternatives, inside a throwaway root (update-alternatives
 * --root): beside iptables-legacy and iptables-nft registered as Debian
 * registers them, install makes bpftables' iptables, ip6tables and their
 * -restore/-save the active ones without changing what "auto" would pick,
 * and remove goes back to the best remaining (nft), in one command.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BIN, requireTools } from './helpers/env';

t.test('install and remove beside legacy and nft', async (t) => {
  if (!requireTools(t, ['update-alternatives'], "Debian's dpkg")) return;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-alt-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const d of ['usr/sbin', 'etc/alternatives', 'var/lib/dpkg/alternatives', 'var/log', 'opt/bpftables/bin']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const touch = (p: string): void => { fs.writeFileSync(path.join(root, p), '#!/bin/sh\n', { mode: 0o755 }); };
  const ua = (args: string[]): ReturnType<typeof spawnSync> => spawnSync('update-alternatives', ['--root', root, ...args], { encoding: 'utf8' });
  // Debian's two, as the iptables package registers them
  for (const [variant, prio] of [['legacy', '10'], ['nft', '20']] as const) {
    for (const g of ['iptables', 'ip6tables']) {
      for (const s of ['', '-restore', '-save']) touch(`usr/sbin/${g}-${variant}${s}`);
      t.equal(ua(['--install', `/usr/sbin/${g}`, g, `/usr/sbin/${g}-${variant}`, prio, '--slave', `/usr/sbin/${g}-restore`, `${g}-restore`, `/usr/sbin/${g}-${variant}-restore`,
        '--slave', `/usr/sbin/${g}-save`, `${g}-save`, `/usr/sbin/${g}-${variant}-save`]).status, 0, `${g}-${variant} registered`);
    }
  }
  for (const g of ['iptables', 'ip6tables']) for (const s of ['', '-restore', '-save']) touch(`opt/bpftables/bin/${g}${s}`);
  const link = (p: string): string => fs.readlinkSync(path.join(root, 'etc/alternatives', p));
  const bpft = (args: string[]): ReturnType<typeof spawnSync> => spawnSync(path.join(BIN, 'bpftables'), ['alternatives', ...args, '--root', root, '--bindir', '/opt/bpftables/bin'], { encoding: 'utf8' });

  const inst = bpft(['install']);
  t.equal(inst.status, 0, `install ${inst.stderr}`);
  t.match(inst.stdout, /switch back with `bpftables alternatives remove`/, 'and says how to switch back');
  t.same(['iptables', 'iptables-restore', 'iptables-save', 'ip6tables', 'ip6tables-restore', 'ip6tables-save'].map(link),
    ['/opt/bpftables/bin/iptables', '/opt/bpftables/bin/iptables-restore', '/opt/bpftables/bin/iptables-save', '/opt/bpftables/bin/ip6tables', '/opt/bpftables/bin/ip6tables-restore', '/opt/bpftables/bin/ip6tables-save'],
    'every link is bpftables\'');
  t.match(ua(['--query', 'iptables']).stdout, /Status: manual\nBest: \/usr\/sbin\/iptables-nft\n/, 'selected by hand; auto would still choose nft');
  t.match(ua(['--query', 'iptables']).stdout, /Alternative: \/opt\/bpftables\/bin\/iptables\nPriority: 5\n/, 'at priority 5');
  const rm = bpft(['remove']);
  t.equal(rm.status, 0, `remove ${rm.stderr}`);
  t.same(['iptables', 'iptables-save', 'ip6tables-restore'].map(link), ['/usr/sbin/iptables-nft', '/usr/sbin/iptables-nft-save', '/usr/sbin/ip6tables-nft-restore'], 'back to nft, slaves too');
  t.notMatch(ua(['--query', 'ip6tables']).stdout, /bpftables/, 'and nothing of ours is left registered');
  t.equal(bpft(['bogus']).status, 2, 'an unknown operation: usage, exit 2');
});
