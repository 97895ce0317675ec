/**
 * Kernel state: per network namespace, survives the process, replaced
 * without leaks, removed by `bpftables flush`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ip, nsExec, uniqueName } from '../compat/lab';
import { close, mapCreate, MapType, mapUpdate, objPin, u32Key } from '../native/bpf';
import { BIN, prepareState, requireKernel } from './helpers/env';
import { kernelObjectCounts, quietObjectCounts, settledObjectCounts, throwawayNamespace } from './helpers/live';
import { bpftablesMain } from '../compat/bpftables';
import { restoreMain } from '../compat/iptables-restore';
import { saveMain } from '../compat/iptables-save';

const RULES = (port: number): string => `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:U - [0:0]
-A INPUT -p tcp -m tcp --dport ${port} -j U
-A U -m conntrack --ctstate NEW -j DROP
COMMIT
`;


t.test('state is per namespace, survives the process, and leaves nothing behind', async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const a = uniqueName('A'), b = uniqueName('B');
  ip('netns', 'add', a); ip('netns', 'add', b);
  t.teardown(() => { for (const n of [a, b]) { try { ip('netns', 'del', n); } catch { /* gone */ } } });
  const run = (ns: string, cmd: string, args: string[] = [], input?: string): ReturnType<typeof nsExec> => nsExec(ns, path.join(BIN, cmd), args, input);

  const baseline = quietObjectCounts();
  t.equal(run(a, 'iptables-restore', [], RULES(22)).status, 0, 'restore in A');
  const afterFirst = settledObjectCounts(kernelObjectCounts());
  t.not(afterFirst, baseline, 'programs, maps and links exist');
  t.match(run(a, 'iptables-save').stdout, /--dport 22 -j U/, 'A sees its rules from a new process');
  t.equal(run(b, 'iptables-save').stdout, '', 'B sees nothing');
  t.notMatch(nsExec(a, 'iptables-save', []).stdout ?? '', /--dport 22/, 'the kernel\'s own iptables sees no rules of ours');
  t.equal(nsExec(a, 'nft', ['list', 'tables']).stdout, 'table ip bpftables\n', 'conntrack is held for A\'s IPv4 (ctstate is used), and only for it');
  t.notMatch(nsExec(b, 'nft', ['list', 'tables']).stdout, /bpftables/, '...and not for B');

  for (let i = 0; i < 5; i++) t.equal(run(a, 'iptables-restore', [], RULES(1000 + i)).status, 0, `replace #${i + 1}`);
  t.equal(settledObjectCounts(afterFirst), afterFirst, 'replacing the ruleset leaks no program, map or link');
  t.match(run(a, 'iptables-save').stdout, /--dport 1004 -j U/, 'the last ruleset is live');
  const nsDir = path.join('/run/bpftables', `net-${fs.statSync(`/run/netns/${a}`).ino}`);
  t.ok(fs.existsSync(path.join(nsDir, 'ipv4', 'conntrack_ref')), 'A\'s IPv4 directory holds the conntrack marker');
  const pins = fs.readdirSync(path.join(nsDir, 'ipv4')).sort();
  t.equal(pins.filter((p) => /^g\d_(counters|state)$/.test(p)).length, 2, `one generation pinned (${pins.join(' ')})`);
  t.same(pins.filter((p) => !/^g\d_/.test(p)), ['conntrack_ref', 'link_FORWARD', 'link_INPUT', 'link_OUTPUT', 'map_gen', 'map_progs'], 'no stray pins');
  for (const d of [nsDir, path.join(nsDir, 'ipv4')]) {
    const st = fs.statSync(d);
    t.equal(st.mode & 0o777, 0o700, `${d} is root's alone`);
    t.equal(st.uid, 0);
  }

  const status = JSON.parse(run(a, 'bpftables', ['status', '--json']).stdout) as Record<'ipv4' | 'ipv6', { loaded: boolean; objects: { kind: string }[] }>;
  t.ok(status.ipv4.loaded, 'status says IPv4 is loaded');
  t.notOk(status.ipv6.loaded, '...and IPv6 is not');
  t.equal(status.ipv4.objects.filter((o) => o.kind === 'link').length, 3, 'three hook links');

  t.equal(run(a, 'bpftables', ['flush']).status, 0, 'flush');
  t.equal(run(a, 'iptables-save').stdout, '', 'nothing left after flush');
  t.equal(settledObjectCounts(baseline), baseline, 'flush removes every kernel object');
  t.notMatch(nsExec(a, 'nft', ['list', 'tables']).stdout, /bpftables/, 'flush releases conntrack');
});

t.test('commands refuse non-root users', async (t) => {
  const realGetuid = process.getuid;
  process.getuid = () => 65534;
  t.teardown(() => { process.getuid = realGetuid; });
  for (const [name, run] of [
    ['iptables-save', () => saveMain('iptables-save', [], silent)],
    ['iptables-restore', () => restoreMain('iptables-restore', ['/dev/null'], silent)],
    ['bpftables status', () => bpftablesMain(['status'], silent)],
  ] as const) {
    t.throws(run, { status: 4, message: /must be run as root/ }, `${name} exits 4 with a clear message`);
  }
});

const silent = { out: (): void => undefined, err: (): void => undefined };

t.test('a first command under ip netns exec mounts the state where it outlives the command', async (t) => {
  if (!requireKernel(t, ['nsenter'])) return;
  const dir = `/run/bpftables-t${process.pid}`;
  const ns = uniqueName('M');
  ip('netns', 'add', ns);
  const env = { ...process.env, BPFTABLES_STATE_DIR: dir };
  const run = (cmd: string, args: string[], input?: string): ReturnType<typeof nsExec> => nsExec(ns, path.join(BIN, cmd), args, input, env);
  t.teardown(() => {
    run('bpftables', ['flush']);
    spawnSync('umount', [dir]);
    fs.rmSync(dir, { recursive: true, force: true });
    ip('netns', 'del', ns);
  });
  t.notOk(fs.existsSync(dir), 'nothing mounted yet');
  const r = run('iptables-restore', [], RULES(2222));
  t.equal(r.status, 0, `restore in a throwaway mount namespace ${r.stderr}`);
  t.equal(fs.statfsSync(dir).type, 0xcafe4a11, 'the bpffs is mounted in the host mount namespace');
  t.match(run('iptables-save', []).stdout, /--dport 2222 -j U/, 'a later command in a new throwaway namespace sees the rules');
});

t.test('state of dead namespaces: gc removes it, and an inode reused by a new namespace never inherits it', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  spawnSync(path.join(BIN, 'bpftables'), ['gc']); // what earlier tests' deleted namespaces left
  const baseline = quietObjectCounts();
  const gone = uniqueName('G');
  ip('netns', 'add', gone);
  t.equal(nsExec(gone, path.join(BIN, 'iptables-restore'), [], RULES(5)).status, 0, 'restore in a namespace');
  const dir = `net-${fs.statSync(`/run/netns/${gone}`).ino}`;
  ip('netns', 'del', gone); // without flushing
  t.ok(fs.existsSync(path.join('/run/bpftables', dir)), 'its state outlives it');
  const gc = spawnSync(path.join(BIN, 'bpftables'), ['gc'], { encoding: 'utf8' });
  t.match(gc.stdout, new RegExp(`removed ${dir}\\n`), 'gc names what it removed');
  t.notOk(fs.existsSync(path.join('/run/bpftables', dir)), 'the directory is gone');
  t.equal(settledObjectCounts(baseline), baseline, 'and with it every kernel object');

  // a directory whose cookie is not the namespace's (as after inode reuse) is discarded, not adopted
  const ns = throwawayNamespace(t, 'R');
  t.equal(nsExec(ns, path.join(BIN, 'iptables-restore'), [], RULES(6)).status, 0);
  const nsDir = path.join('/run/bpftables', `net-${fs.statSync(`/run/netns/${ns}`).ino}`);
  const before = JSON.parse(nsExec(ns, path.join(BIN, 'bpftables'), ['status', '--json']).stdout).ipv4 as { objects: { kind: string; id: number }[] };
  fs.rmSync(path.join(nsDir, 'netns_cookie'));
  const fake = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'bpft_netns' });
  mapUpdate(fake, u32Key(0), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
  objPin(fake, path.join(nsDir, 'netns_cookie'));
  close(fake);
  t.equal(nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout, '', 'the stale state is not shown as this namespace\'s');
  t.equal(nsExec(ns, path.join(BIN, 'iptables-restore'), [], RULES(7)).status, 0, 'a restore works');
  const after = JSON.parse(nsExec(ns, path.join(BIN, 'bpftables'), ['status', '--json']).stdout).ipv4 as { objects: { kind: string; id: number }[] };
  const links = (s: typeof before): number[] => s.objects.filter((o) => o.kind === 'link').map((o) => o.id).sort();
  t.equal(links(after).length, 3, 'three links');
  t.notSame(links(after), links(before), 'attached afresh in this namespace, not the stale ones');
  t.match(nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout, /--dport 7 -j U/);
});

t.test('another hook at priority 0 (iptables-legacy here): our hooks attach at the nearest free priority, with a warning', async (t) => {
  if (!requireKernel(t, ['iptables-legacy'])) return;
  prepareState();
  const ns = throwawayNamespace(t, 'pr');
  t.equal(nsExec(ns, 'iptables-legacy', ['-A', 'INPUT', '-p', 'udp', '--dport', '1', '-j', 'DROP']).status, 0, 'iptables-legacy holds priority 0');
  const r = nsExec(ns, path.join(BIN, 'iptables-restore'), [], '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n');
  t.equal(r.status, 0, `restore succeeds ${r.stderr}`);
  t.match(r.stderr, /holds priority 0 at INPUT: attached at priority 1/, 'a warning names the hook and the priority');
  const status = JSON.parse(nsExec(ns, path.join(BIN, 'bpftables'), ['status', '--json']).stdout) as { ipv4: { objects: { file: string; detail: string }[] } };
  for (const chain of ['INPUT', 'FORWARD', 'OUTPUT']) {
    t.match(status.ipv4.objects.find((o) => o.file === `link_${chain}`)?.detail, / prio 1$/, `status shows ${chain} at priority 1`);
  }
  t.match(nsExec(ns, 'iptables-legacy', ['-S', 'INPUT']).stdout, /--dport 1 -j DROP/, 'the other firewall is untouched');
});
