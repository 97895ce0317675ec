#!/usr/bin/env node
// `npm run package:deb`: dist/bpftables_VERSION_ARCH.deb, with everything needed at run time (no network at
// install): the bundle and its code cache, the launchers, the production node_modules (koffi's native binary
// for this architecture among them), the man page, bash completion and systemd units. Depends: nodejs (>= 20).
//
//   /usr/lib/bpftables/{bin,dist,node_modules,fixtures,package.json}   the program
//   /usr/sbin/bpftables                                                  → /usr/lib/bpftables/bin/bpftables
//   /usr/share/man/man8/*.8.gz, /usr/share/bash-completion/completions/bpftables, /lib/systemd/system/*.service
//
// The iptables-compatible commands stay in /usr/lib/bpftables/bin: /usr/sbin/iptables and its kin belong to
// Debian's iptables package and its alternatives; `bpftables alternatives install` registers ours there,
// and `bpftables alternatives remove` switches back. Nothing is enabled or switched at install.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const repo = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
if (!arch) throw new Error(`no Debian architecture for ${process.arch}`);
if (!fs.existsSync(path.join(repo, 'dist', 'bundle.js'))) throw new Error('run npm run build first');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bpftables-deb-'));
const lib = path.join(root, 'usr', 'lib', 'bpftables');
const copy = (from, to) => { fs.mkdirSync(path.dirname(to), { recursive: true }); fs.cpSync(from, to, { recursive: true, dereference: true }); };
try {
  for (const f of ['bundle.js', 'bundle.cache', 'load.js']) copy(path.join(repo, 'dist', f), path.join(lib, 'dist', f));
  copy(path.join(repo, 'bin'), path.join(lib, 'bin'));
  copy(path.join(repo, 'fixtures', 'demo.rules'), path.join(lib, 'fixtures', 'demo.rules'));
  fs.writeFileSync(path.join(lib, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, license: pkg.license, private: true }, null, 2) + '\n');
  // the production dependencies, as npm installed them (their own package.json files keep resolution working)
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: repo, encoding: 'utf8' })
    .split('\n').filter((p) => p && p !== repo && p.includes(`${path.sep}node_modules${path.sep}`));
  for (const d of deps) copy(d, path.join(lib, path.relative(repo, d)));
  // koffi's binaries for other systems are dead weight here
  const koffiBins = path.join(lib, 'node_modules', '@koromix', `koffi-${process.platform}-${process.arch}`);
  for (const e of fs.existsSync(koffiBins) ? fs.readdirSync(koffiBins) : []) {
    if (e.includes('musl') && fs.statSync(path.join(koffiBins, e)).isDirectory()) fs.rmSync(path.join(koffiBins, e), { recursive: true });
  }
  fs.mkdirSync(path.join(root, 'usr', 'sbin'), { recursive: true });
  fs.symlinkSync('../lib/bpftables/bin/bpftables', path.join(root, 'usr', 'sbin', 'bpftables'));
  const man = path.join(root, 'usr', 'share', 'man', 'man8');
  fs.mkdirSync(man, { recursive: true });
  // bpftables.8 as such; the other commands' pages under bpftables-NAME.8, beside Debian's own iptables(8) etc.
  for (const f of fs.readdirSync(path.join(repo, 'dist', 'man'))) {
    const name = f === 'bpftables.8' ? f : `bpftables-${f}`;
    fs.writeFileSync(path.join(man, `${name}.gz`), zlib.gzipSync(fs.readFileSync(path.join(repo, 'dist', 'man', f)), { level: 9 }));
  }
  copy(path.join(repo, 'dist', 'completion', 'bpftables'), path.join(root, 'usr', 'share', 'bash-completion', 'completions', 'bpftables'));
  for (const u of fs.readdirSync(path.join(repo, 'packaging', 'systemd'))) copy(path.join(repo, 'packaging', 'systemd', u), path.join(root, 'lib', 'systemd', 'system', u));
  const size = Number(execFileSync('du', ['-sk', root], { encoding: 'utf8' }).split('\t')[0]);
  fs.mkdirSync(path.join(root, 'DEBIAN'));
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), [
    `Package: bpftables`, `Version: ${pkg.version}`, `Architecture: ${arch}`, 'Maintainer: bpftables developers <bpftables@localhost>',
    `Installed-Size: ${size}`, 'Depends: nodejs (>= 20)', 'Recommends: iptables', 'Suggests: nftables, bpftool', 'Section: net', 'Priority: optional',
    `Description: ${pkg.description}`,
    ' bpftables runs iptables\' filter table (IPv4 and IPv6) as BPF_PROG_TYPE_NETFILTER',
    ' programs attached to the netfilter hooks, replaces rulesets atomically, and',
    ' migrates rulesets between iptables and nft syntax. Its iptables, ip6tables and',
    ' their -save/-restore/-translate commands live in /usr/lib/bpftables/bin;',
    ' "bpftables alternatives install" registers them with update-alternatives.', ''].join('\n'));
  fs.mkdirSync(path.join(repo, 'dist'), { recursive: true });
  const out = path.join(repo, 'dist', `bpftables_${pkg.version}_${arch}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, out], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.stdout.write(`${out}\n`);
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
