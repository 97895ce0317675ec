/**
 * `npm run bench`: per-packet cost (BPF_PROG_TEST_RUN) and restore time,
 * beside iptables-legacy-restore and iptables-nft-restore on the same input.
 * A benchmark, not a test: prints a table (and JSON with --json).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Asm, link, NF_ACCEPT } from '../cgen/asm';
import { compileTable } from '../cgen/program';
import { kernel, loadCompiled } from '../compat/engine';
import { ip, uniqueName } from '../compat/lab';
import { systemNameDb } from '../compat/namedb';
import { TCP, tcpPacket } from '../compat/probes';
import { ATTACH_NETFILTER, close, PROG_TYPE_NETFILTER, progInfo, progLoad, testRunNf } from '../native/bpf';
import { ensureStateRoot } from '../native/statefs';
import { parseRestore } from '../xlate/restore';

const REPO = path.resolve(__dirname, '..', '..');
const REPEAT = 100_000;
const json = process.argv.includes('--json');

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }

type Shape = 'exact' | 'prefix' | 'general';
const SHAPES: Record<Shape, string> = {
  exact: 'blocklist of exact tuples: -s A/32 -p tcp --dport P -j DROP (one hash lookup)',
  prefix: 'blocklist of prefixes with port ranges: -s A/24 -p tcp --dport P:P+9 -j DROP (LPM prefilter)',
  general: 'general rules: -p tcp --dport P:P+9 -m length --length L:65535 -j DROP (one by one)',
};

/** n rules of one shape that a packet from 192.0.2.1 to port 65000 never matches. */
function noMatchRules(n: number, shape: Shape = 'exact'): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++) {
    const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const p = (i % 6000) + 1;
    lines.push(shape === 'exact' ? `-A INPUT -s ${a}/32 -p tcp -m tcp --dport ${p} -j DROP`
      : shape === 'prefix' ? `-A INPUT -s ${a}/24 -p tcp -m tcp --dport ${p}:${p + 9} -j DROP`
        : `-A INPUT -p tcp -m tcp --dport ${p}:${p + 9} -m length --length ${40 + (i % 1000)}:65535 -j DROP`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function perPacket(fd: number): number {
  const pkt = tcpPacket('192.0.2.1', '10.0.0.1', { sport: 40000, dport: 65000, flags: TCP.SYN });
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) runs.push(testRunNf(fd, pkt, 1, undefined, REPEAT).durationNs);
  return median(runs);
}

function floorProgram(): number {
  const a = new Asm().mov64(0, NF_ACCEPT).exit();
  return progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: link(a).bytes, name: 'bpft_floor' });
}

interface PacketRow { shape: Shape; rules: number; ns: number; overFloorNs: number; xlatedInsns: number; jitedBytes: number }
interface RestoreRow { rules: number; bpftablesMs: number; legacyMs: number | null; nftMs: number | null }

function timeRestore(cmd: string, file: string): number | null {
  if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status !== 0) return null;
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const ns = uniqueName('bench');
    ip('netns', 'add', ns);
    try {
      const t0 = process.hrtime.bigint();
      const r = spawnSync('ip', ['netns', 'exec', ns, cmd, file], { encoding: 'utf8' });
      const t1 = process.hrtime.bigint();
      if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
      runs.push(Number(t1 - t0) / 1e6);
    } finally { ip('netns', 'del', ns); }
  }
  return median(runs);
}

function main(): void {
  ensureStateRoot();
  const k = kernel();
  const floorFd = floorProgram();
  const floor = perPacket(floorFd);
  close(floorFd);
  const packets: PacketRow[] = [];
  for (const shape of Object.keys(SHAPES) as Shape[]) for (const n of [1, 100, 1000]) {
    const table = parseRestore(noMatchRules(n, shape), { file: `bench${n}`, db: systemNameDb, counters: false }).tables[0]!;
    const compiled = compileTable(table, k);
    const loaded = loadCompiled(compiled, table);
    const fd = loaded.progFds.get(0)!; // INPUT
    const ns = perPacket(fd);
    const info = progInfo(fd);
    packets.push({ shape, rules: n, ns, overFloorNs: ns - floor, xlatedInsns: info.xlatedLen / 8, jitedBytes: info.jitedLen });
    loaded.close();
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-bench-'));
  const restores: RestoreRow[] = [];
  for (const n of [1000, 10000]) {
    const file = path.join(tmp, `rules${n}`);
    fs.writeFileSync(file, noMatchRules(n));
    restores.push({
      rules: n,
      bpftablesMs: timeRestore(path.join(REPO, 'bin', 'iptables-restore'), file)!,
      legacyMs: timeRestore('iptables-legacy-restore', file),
      nftMs: timeRestore('iptables-nft-restore', file),
    });
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const result = { floorNs: floor, repeat: REPEAT, packets, restores };
  if (json) { process.stdout.write(JSON.stringify(result, null, 2) + '\n'); return; }
  const f1 = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(1));
  const ratio = (a: number, b: number | null): string => (b === null ? 'n/a' : `${(a / b).toFixed(2)}x`);
  process.stdout.write(`per packet (BPF_PROG_TEST_RUN, ${REPEAT} repeats, median of 5), no-match worst case\n`);
  process.stdout.write(`  empty-program floor: ${floor} ns\n`);
  for (const shape of Object.keys(SHAPES) as Shape[]) {
    process.stdout.write(`  ${shape}: ${SHAPES[shape]}\n`);
    process.stdout.write('    rules    ns/packet  over floor  xlated insns  jited bytes\n');
    for (const p of packets.filter((x) => x.shape === shape)) {
      process.stdout.write(`    ${String(p.rules).padStart(5)}  ${String(p.ns).padStart(10)}  ${String(p.overFloorNs).padStart(10)}  ${String(p.xlatedInsns).padStart(12)}  ${String(p.jitedBytes).padStart(11)}\n`);
    }
  }
  process.stdout.write('\nrestore of the exact-tuple blocklist (wall clock incl. process start, median of 3, fresh namespace each)\n');
  process.stdout.write('  rules  bpftables ms  legacy ms  nft ms  vs legacy  vs nft\n');
  for (const r of restores) {
    process.stdout.write(`  ${String(r.rules).padStart(5)}  ${f1(r.bpftablesMs).padStart(12)}  ${f1(r.legacyMs).padStart(9)}  ${f1(r.nftMs).padStart(6)}  ${ratio(r.bpftablesMs, r.legacyMs).padStart(9)}  ${ratio(r.bpftablesMs, r.nftMs).padStart(6)}\n`);
  }
}

main();
