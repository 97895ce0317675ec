/**
 * `npm run bench`: a benchmark, not a test. In one run:
 *   - per packet (BPF_PROG_TEST_RUN on the INPUT program): three shapes of
 *     ruleset (source blocklist, kube-proxy style service list, mixed general
 *     rules) at 1, 100, 1k, 10k and 100k rules; a packet that hits the first
 *     rule, the last rule, or none; one warm packet (repeat 100000, median
 *     of 5) and a rotating set of 1000 varied packets; the empty-program
 *     floor; xlated instructions and kernel memory (memlock of the programs
 *     and maps) per rule;
 *   - control plane: restoring 1k, 10k and 100k rules, printing 10k and 100k
 *     back (iptables-save), and adding one rule to 10k and 100k, beside
 *     iptables-legacy, iptables-nft and nft (one rule per line, and a set),
 *     each in a fresh namespace; peak RSS.
 * Prints tables (`--json`: the same as JSON). `--quick` stops at 10k rules.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Asm, link, NF_ACCEPT, patchMaps } from '../cgen/asm';
import { compileTable } from '../cgen/program';
import { kernel, loadCompiled } from '../compat/engine';
import { appendRoom } from '../compat/fast-append';
import { dispatcher, GEN_MAP, HOOK_SLOTS, PROGS_MAP } from '../cgen/dispatcher';
import { ip, uniqueName } from '../compat/lab';
import { systemNameDb } from '../compat/namedb';
import { TCP, tcpPacket } from '../compat/probes';
import { ATTACH_NETFILTER, close, mapCreate, mapFdById, MapType, mapUpdate, PROG_TYPE_NETFILTER, progInfo, progLoad, testRunNf, u32Key } from '../native/bpf';
import { ensureStateRoot } from '../native/statefs';
import { BpftablesError } from '../xlate/errors';
import { parseRestore } from '../xlate/restore';

const REPO = path.resolve(__dirname, '..', '..');
const REPEAT = 100_000;
const ROTATE = 1000;
const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const SIZES = quick ? [1, 100, 1000, 10_000] : [1, 100, 1000, 10_000, 100_000];

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const addr = (base: number, i: number): string => `${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

type Shape = 'blocklist' | 'service' | 'mixed';
const SHAPES: Record<Shape, string> = {
  blocklist: '-s A/32 -j DROP (source blocklist)',
  service: '-d VIP/32 -p tcp --dport P -j SVC-k (kube-proxy style; 16 service chains)',
  mixed: 'port ranges, lengths, negations, udp, user chains, cycled (general rules)',
};

/** n rules of a shape, and packets that hit its first rule, its last, and none (each a function of a varying index). */
function ruleset(shape: Shape, n: number): { text: string; first: (v: number) => Buffer; last: (v: number) => Buffer; none: (v: number) => Buffer } {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  const port = (i: number): number => 1 + (i % 60000);
  const sport = (v: number): number => 30000 + (v % 20000);
  if (shape === 'service' || shape === 'mixed') for (let k = 0; k < 16; k++) lines.push(`:SVC-${k} - [0:0]`);
  for (let i = 0; i < n; i++) {
    if (shape === 'blocklist') lines.push(`-A INPUT -s ${addr(10, i)}/32 -j DROP`);
    else if (shape === 'service') lines.push(`-A INPUT -d ${addr(172, i)}/32 -p tcp -m tcp --dport ${port(i)} -j SVC-${i % 16}`);
    else {
      const a = addr(10, i), p = port(i);
      lines.push([
        `-A INPUT -s ${a}/32 -p tcp -m tcp --dport ${p}:${p} -m length --length 40:65535 -j DROP`,
        `-A INPUT -s ${a}/32 -p udp -m udp ! --sport 0:1023 --dport ${p} -j ACCEPT`,
        `-A INPUT -s ${a}/32 -p tcp -m tcp ! --sport 1:1023 --dport ${p} -j SVC-${i % 16}`,
        `-A INPUT -s ${a}/32 ! -d 127.0.0.0/8 -p tcp -m multiport --dports ${p},${p} -j DROP`,
      ][i % 4]!);
    }
  }
  if (shape !== 'blocklist') for (let k = 0; k < 16; k++) lines.push(`-A SVC-${k} -j ACCEPT`);
  lines.push('COMMIT', '');
  const pkt = (src: string, dst: string, dport: number, v: number): Buffer => tcpPacket(src, dst, { sport: sport(v), dport, flags: TCP.SYN });
  const hit = (i: number) => (v: number): Buffer =>
    shape === 'blocklist' ? pkt(addr(10, i), '192.0.2.1', 80, v) : shape === 'service' ? pkt('192.0.2.9', addr(172, i), port(i), v) : pkt(addr(10, i), '192.0.2.1', port(i), v);
  return { text: lines.join('\n'), first: hit(0), last: hit(n - 1), none: (v) => pkt('192.0.2.77', '198.51.100.1', 65100, v) };
}

/** A hit of the mixed shape's rule `i`: its udp rules (i % 4 == 1) need the same header as a UDP datagram. */
function hitPacket(shape: Shape, n: number, which: 'first' | 'last', make: (v: number) => Buffer): (v: number) => Buffer {
  const i = which === 'first' ? 0 : n - 1;
  if (shape !== 'mixed' || i % 4 !== 1) return make;
  return (v) => { const p = make(v); p[9] = 17; p.writeUInt16BE(20, 24); return p; };
}

/** ns a packet of the dispatcher (what the hook runs: the active generation's program by tail call) in front of `target`. */
function throughDispatcher(target: number, pkt: Buffer): number {
  const gen = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1, name: 'bpft_gen' });
  const progs = mapCreate({ type: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2 * HOOK_SLOTS, name: 'bpft_progs' });
  let d = -1;
  try {
    mapUpdate(progs, u32Key(0), u32Key(target));
    d = progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: patchMaps(dispatcher(0), new Map([[GEN_MAP, gen], [PROGS_MAP, progs]])), name: 'bpft_input' });
    return warm(d, pkt);
  } finally { close(d); close(progs); close(gen); }
}

function floorProgram(): number {
  const a = new Asm().mov64(0, NF_ACCEPT).exit();
  return progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: link(a).bytes, name: 'bpft_floor' });
}
const warm = (fd: number, pkt: Buffer): number => median(Array.from({ length: 5 }, () => testRunNf(fd, pkt, 1, undefined, REPEAT).durationNs));
function rotating(fd: number, make: (v: number) => Buffer): number {
  let sum = 0;
  for (let v = 0; v < ROTATE; v++) sum += testRunNf(fd, make(v), 1, undefined, 100).durationNs;
  return Math.round(sum / ROTATE);
}

/** memlock (bytes) of an open program or map, from /proc/self/fdinfo */
const memlockOf = (fd: number): number => Number(/^memlock:\s+(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);

/** Kernel memory (memlock) of the programs and of every map they hold, each map once. */
function kernelBytesOf(progFds: Iterable<number>): number {
  let total = 0;
  const maps = new Set<number>();
  for (const fd of progFds) {
    total += memlockOf(fd);
    for (const id of progInfo(fd).mapIds) maps.add(id);
  }
  for (const id of maps) {
    const fd = mapFdById(id);
    try { total += memlockOf(fd); } finally { close(fd); }
  }
  return total;
}

interface PacketRow { shape: Shape; rules: number; refused?: string; floorNs: number; ns?: Record<'first' | 'last' | 'none', { warm: number; rotating: number }>; xlatedInsns?: number; kernelBytesPerRule?: number }

function perPacket(floor: number): PacketRow[] {
  const k = kernel();
  const rows: PacketRow[] = [];
  for (const shape of Object.keys(SHAPES) as Shape[]) for (const n of SIZES) {
    const rs = ruleset(shape, n);
    const table = parseRestore(rs.text, { file: `bench-${shape}-${n}`, db: systemNameDb, counters: false }).tables[0]!;
    let loaded;
    // compiled as iptables-restore compiles (room kept for appended rules)
    try { loaded = loadCompiled(compileTable(table, k, { appendRoom: appendRoom() }), table); } catch (e) {
      if (!(e instanceof BpftablesError)) throw e;
      rows.push({ shape, rules: n, floorNs: floor, refused: e.message.replace(/: rules are checked.*$/, '') });
      continue;
    }
    try {
      // the programs and the maps they hold (the counters, the runs' hash maps, prefilters)
      const kernelBytes = kernelBytesOf(loaded.progFds.values());
      const fd = loaded.progFds.get(0)!;
      const ns = {} as NonNullable<PacketRow['ns']>;
      for (const which of ['first', 'last', 'none'] as const) {
        const make = which === 'none' ? rs.none : hitPacket(shape, n, which, rs[which]);
        ns[which] = { warm: warm(fd, make(0)), rotating: rotating(fd, make) };
      }
      rows.push({ shape, rules: n, floorNs: floor, ns, xlatedInsns: progInfo(fd).xlatedLen / 8, kernelBytesPerRule: Math.round(kernelBytes / n) });
    } finally { loaded.close(); }
  }
  return rows;
}

const have = (cmd: string): boolean => spawnSync('which', [cmd], { stdio: 'ignore' }).status === 0;

/** One wall-time measurement (ms) of `cmd args` in a fresh namespace, after `setup` ran there. */
function timeOnce(cmd: string, args: string[], input?: string, setup?: (ns: string) => void): number {
  const ns = uniqueName('bench');
  ip('netns', 'add', ns);
  try {
    setup?.(ns);
    const t0 = process.hrtime.bigint();
    const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
    const t1 = process.hrtime.bigint();
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.slice(0, 300)}`);
    return Number(t1 - t0) / 1e6;
  } finally {
    spawnSync('ip', ['netns', 'exec', ns, path.join(REPO, 'bin', 'bpftables'), 'flush'], { stdio: 'ignore' });
    ip('netns', 'del', ns);
  }
}

type Timing = [cmd: string, args: string[], input?: string, setup?: (ns: string) => void];

/**
 * Wall times (ms, median of `runs`) of several commands, measured round
 * robin (one run of each, then the next round), so that a slow moment of the
 * machine (other tenants, the kernel still freeing the per-packet section's
 * programs) falls on every tool alike; null for a tool not installed.
 */
function timedTogether(jobs: Record<string, Timing>, runs = 3): Record<string, number | null> {
  const names = Object.keys(jobs).filter((k) => { const c = jobs[k]![0]; return c.startsWith('/') || have(c); });
  const ms = new Map<string, number[]>(names.map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const k of names) ms.get(k)!.push(timeOnce(...jobs[k]!));
  return Object.fromEntries(Object.keys(jobs).map((k) => [k, ms.has(k) ? median(ms.get(k)!) : null]));
}

const runIn = (ns: string, cmd: string, args: string[], input?: string): void => {
  const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr.slice(0, 300)}`);
};

/** The blocklist of n sources as nft input: one rule per line, or one set. */
function nftBlocklist(n: number, form: 'rules' | 'set'): string {
  const head = 'table ip filter {\n';
  if (form === 'rules') {
    const rules = Array.from({ length: n }, (_, i) => `\t\tip saddr ${addr(10, i)} drop\n`).join('');
    return `${head}\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n${rules}\t}\n}\n`;
  }
  const elems = Array.from({ length: n }, (_, i) => addr(10, i)).join(', ');
  return `${head}\tset bl {\n\t\ttype ipv4_addr\n\t\telements = { ${elems} }\n\t}\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip saddr @bl drop\n\t}\n}\n`;
}

/** Peak RSS (KiB) of our restore of `file`, measured by a child doing what bin/iptables-restore does. */
function peakRss(file: string): number {
  const ns = uniqueName('bench');
  ip('netns', 'add', ns);
  try {
    const script = `require(${JSON.stringify(path.join(REPO, 'dist', 'compat', 'iptables-restore.js'))}).restoreMain('iptables-restore', [${JSON.stringify(file)}], { out() {}, err(s) { process.stderr.write(s); } }); process.stdout.write(String(process.resourceUsage().maxRSS));`;
    const flags = (require(path.join(REPO, 'dist', 'load.js')) as { nodeFlags(): string[] }).nodeFlags();
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...flags, '-e', script], { encoding: 'utf8' });
    return Number(r.stdout.trim());
  } finally {
    spawnSync('ip', ['netns', 'exec', ns, path.join(REPO, 'bin', 'bpftables'), 'flush'], { stdio: 'ignore' });
    ip('netns', 'del', ns);
  }
}

type NftPair = { bpftables: number | null; nft: number | null };
interface ControlRow { rules: number; restore: Record<string, number | null>; nftFile: { rules: NftPair; set: NftPair }; save: Record<string, number | null> | null; addOne: Record<string, number | null> | null; peakRssKiB: number }

function controlPlane(): ControlRow[] {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-bench-'));
  const rows: ControlRow[] = [];
  try {
    for (const n of quick ? [1000, 10_000] : [1000, 10_000, 100_000]) {
      const file = path.join(tmp, `rules${n}`);
      fs.writeFileSync(file, ruleset('blocklist', n).text);
      const nftRules = nftBlocklist(n, 'rules'), nftSet = nftBlocklist(n, 'set');
      const ours = path.join(REPO, 'bin', 'iptables-restore');
      const oursNft = path.join(REPO, 'bin', 'nft');
      const timed = timedTogether({
        bpftables: [ours, [file]],
        'iptables-legacy-restore': ['iptables-legacy-restore', [file]],
        'iptables-nft-restore': ['iptables-nft-restore', [file]],
        'nft -f (rules)': ['nft', ['-f', '-'], nftRules],
        'nft -f (set)': ['nft', ['-f', '-'], nftSet],
        // the same nft files through bpftables' nft front end (a named set of addresses is one map)
        'bpftables nft -f (rules)': [oursNft, ['-f', '-'], nftRules],
        'bpftables nft -f (set)': [oursNft, ['-f', '-'], nftSet],
      });
      const restore = Object.fromEntries(Object.entries(timed).filter(([k]) => !k.startsWith('bpftables nft')));
      const nftFile = { rules: { bpftables: timed['bpftables nft -f (rules)'] ?? null, nft: timed['nft -f (rules)'] ?? null }, set: { bpftables: timed['bpftables nft -f (set)'] ?? null, nft: timed['nft -f (set)'] ?? null } };
      // printing the live ruleset back from a new process
      const save = n < 10_000 ? null : timedTogether({
        bpftables: [path.join(REPO, 'bin', 'iptables-save'), [], undefined, (ns) => runIn(ns, ours, [file])],
        'iptables-legacy-save': ['iptables-legacy-save', [], undefined, (ns) => runIn(ns, 'iptables-legacy-restore', [file])],
        'iptables-nft-save': ['iptables-nft-save', [], undefined, (ns) => runIn(ns, 'iptables-nft-restore', [file])],
        'nft list ruleset': ['nft', ['list', 'ruleset'], undefined, (ns) => runIn(ns, 'nft', ['-f', '-'], nftRules)],
      });
      const add = ['-A', 'INPUT', '-s', '10.255.255.1/32', '-j', 'DROP'];
      const addOne = n < 10_000 ? null : timedTogether({
        bpftables: [path.join(REPO, 'bin', 'iptables'), add, undefined, (ns) => runIn(ns, ours, [file])],
        'iptables-legacy': ['iptables-legacy', add, undefined, (ns) => runIn(ns, 'iptables-legacy-restore', [file])],
        'iptables-nft': ['iptables-nft', add, undefined, (ns) => runIn(ns, 'iptables-nft-restore', [file])],
        'nft add rule': ['nft', ['add', 'rule', 'ip', 'filter', 'input', 'ip', 'saddr', '10.255.255.1', 'drop'], undefined, (ns) => runIn(ns, 'nft', ['-f', '-'], nftRules)],
      });
      rows.push({ rules: n, restore, nftFile, save, addOne, peakRssKiB: peakRss(file) });
    }
  } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
  return rows;
}

function main(): void {
  ensureStateRoot();
  const floorFd = floorProgram();
  const floorPkt = tcpPacket('192.0.2.1', '10.0.0.1', { sport: 1, dport: 2, flags: TCP.SYN });
  const floor = warm(floorFd, floorPkt);
  const dispatched = throughDispatcher(floorFd, floorPkt);
  close(floorFd);
  // commands start without NODE_EXTRA_CA_CERTS (bin/*'s env -u): the fair bare node is the one without it too
  const startup = timedTogether({
    'node -e 0': [process.execPath, ['-e', '0']],
    'node -e 0 (as commands start)': ['env', ['-u', 'NODE_EXTRA_CA_CERTS', process.execPath, '-e', '0']],
    'iptables -V': [path.join(REPO, 'bin', 'iptables'), ['-V']],
  }, 5);
  const packets = perPacket(floor);
  const control = controlPlane();
  const machine = { kernel: os.release(), cpu: os.cpus()[0]?.model ?? '?', cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version };
  const result = { machine, floorNs: floor, dispatcherNs: dispatched - floor, repeat: REPEAT, rotate: ROTATE, startup, packets, control };
  if (json) { process.stdout.write(JSON.stringify(result, null, 2) + '\n'); return; }
  const out = (s: string): void => { process.stdout.write(s + '\n'); };
  const ms = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : x.toFixed(0));
  out(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}`);
  out(`start-up: node -e 0 ${ms(startup['node -e 0'])} ms (${ms(startup['node -e 0 (as commands start)'])} without NODE_EXTRA_CA_CERTS, as commands start), iptables -V ${ms(startup['iptables -V'])} ms`);
  out(`\nper packet, ns (BPF_PROG_TEST_RUN; warm: one packet ${REPEAT} times, median of 5; rot: ${ROTATE} varied packets); floor ${floor} ns; the dispatcher in front of a program adds ${dispatched - floor} ns (not in the figures below, which run the hook program itself)`);
  for (const shape of Object.keys(SHAPES) as Shape[]) {
    out(`  ${shape}: ${SHAPES[shape]}`);
    out('     rules  first warm/rot   last warm/rot   none warm/rot  none-floor  xlated insns  kernel B/rule');
    for (const r of packets.filter((x) => x.shape === shape)) {
      if (!r.ns) { out(`  ${String(r.rules).padStart(8)}  refused: ${r.refused}`); continue; }
      const c = (w: { warm: number; rotating: number }): string => `${w.warm}/${w.rotating}`.padStart(14);
      out(`  ${String(r.rules).padStart(8)}  ${c(r.ns.first)}  ${c(r.ns.last)}  ${c(r.ns.none)}  ${String(r.ns.none.warm - floor).padStart(10)}  ${String(r.xlatedInsns).padStart(12)}  ${String(r.kernelBytesPerRule).padStart(13)}`);
    }
  }
  out('\ncontrol plane, ms (wall clock incl. process start, median of 3, fresh namespace each); the blocklist shape');
  const tools = Object.keys(control[0]?.restore ?? {});
  out(`  restore    rules  ${tools.map((x) => x.padStart(24)).join('')}   bpftables peak RSS`);
  for (const r of control) {
    const base = r.restore.bpftables;
    out(`  ${String(r.rules).padStart(15)}  ${tools.map((x) => `${ms(r.restore[x])}${x === 'bpftables' ? '' : ` (${base && r.restore[x] ? (base / r.restore[x]!).toFixed(2) : 'n/a'}x)`}`.padStart(24)).join('')}   ${(r.peakRssKiB / 1024).toFixed(0)} MiB`);
  }
  out('  nft -f   rules         bpftables nft (rules)         nft (rules)     bpftables nft (set)           nft (set)');
  for (const r of control) {
    const pair = (p: NftPair): string => `${`${ms(p.bpftables)}${p.bpftables && p.nft ? ` (${(p.bpftables / p.nft).toFixed(2)}x)` : ''}`.padStart(22)}${ms(p.nft).padStart(20)}`;
    out(`  ${String(r.rules).padStart(15)}  ${pair(r.nftFile.rules)}  ${pair(r.nftFile.set)}`);
  }
  const saves = control.filter((r) => r.save);
  if (saves.length) {
    const t3 = Object.keys(saves[0]!.save!);
    out(`  save     rules  ${t3.map((x) => x.padStart(22)).join('')}`);
    for (const r of saves) {
      const base = r.save!.bpftables;
      out(`  ${String(r.rules).padStart(15)}  ${t3.map((x) => `${ms(r.save![x])}${x === 'bpftables' ? '' : ` (${base && r.save![x] ? (base / r.save![x]!).toFixed(2) : 'n/a'}x)`}`.padStart(22)).join('')}`);
    }
  }
  const adds = control.filter((r) => r.addOne);
  if (adds.length) {
    const t2 = Object.keys(adds[0]!.addOne!);
    out(`  add one  rules  ${t2.map((x) => x.padStart(22)).join('')}`);
    for (const r of adds) {
      const base = r.addOne!.bpftables;
      out(`  ${String(r.rules).padStart(15)}  ${t2.map((x) => `${ms(r.addOne![x])}${x === 'bpftables' ? '' : ` (${base && r.addOne![x] ? (base / r.addOne![x]!).toFixed(2) : 'n/a'}x)`}`.padStart(22)).join('')}`);
    }
  }
  out('  (x: bpftables time / that tool\'s time; below 1 means bpftables is faster)');
}

main();
