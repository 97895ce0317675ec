/**
 * Soak: 1000 ruleset replacements while a TCP stream that every version of
 * the rules allows runs through the router: not one of its segments is
 * dropped (no retransmission on either end, every byte arrives), and kernel
 * memory stays flat (the same programs, maps and links, unreclaimable slab
 * within a few MiB).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { nsExec, sleep, Topology } from '../../compat/lab';
import { BIN, prepareState, requireKernel } from '../helpers/env';
import { kernelObjectCounts, settledObjectCounts } from '../helpers/live';

const CYCLES = 1000;

function ruleset(d: number): string {
  const fill = Array.from({ length: 200 }, (_, i) => `-A FORWARD -s 10.${50 + d}.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport ${2000 + i} -j DROP`);
  return ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ...fill,
    `-A FORWARD -p udp -m udp --dport ${6000 + d} -j ACCEPT`,
    '-A FORWARD -s 10.0.1.2/32 -d 10.0.2.2/32 -p tcp -m tcp --dport 5001 -j ACCEPT',
    '-A FORWARD -s 10.0.2.2/32 -d 10.0.1.2/32 -p tcp -m tcp --sport 5001 -j ACCEPT', 'COMMIT', ''].join('\n');
}

/** TCP counters of a namespace (/proc/net/snmp, the Tcp: lines). */
function tcpStats(ns: string): Record<string, number> {
  const lines = nsExec(ns, 'cat', ['/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  return Object.fromEntries(names!.map((n, i) => [n, Number(values![i])]));
}
const unreclaimable = (): number => Number(/SUnreclaim:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;

function start(ns: string, script: string): { child: ReturnType<typeof spawn>; out: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout!.on('data', (d) => { text += d; });
  return { child, out: new Promise((resolve) => child.on('close', () => resolve(text))) };
}

t.test(`${CYCLES} replacements under a running TCP stream: no segment lost, memory flat`, async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const topo = new Topology('S');
  t.teardown(() => topo.destroy());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-soak-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = [0, 1].map((d) => { const f = path.join(dir, `r${d}`); fs.writeFileSync(f, ruleset(d)); return f; });
  t.equal(nsExec(topo.router, path.join(BIN, 'iptables-restore'), [files[0]!]).status, 0, 'the first ruleset');
  sleep(300);
  const idsBefore = kernelObjectCounts(), slabBefore = unreclaimable();

  const server = start(topo.server, `let n = 0; require('net').createServer((s) => { s.on('data', (d) => { n += d.length; }); s.on('end', () => { console.log(n); process.exit(0); }); }).listen(5001, '10.0.2.2', () => console.log('ready'));`);
  // the listener needs a moment in its namespace
  sleep(500);
  const client = start(topo.client, `const s = require('net').connect(5001, '10.0.2.2'); let n = 0; const chunk = Buffer.alloc(1000, 120);
    const timer = setInterval(() => { s.write(chunk); n += chunk.length; }, 2);
    process.on('SIGTERM', () => { clearInterval(timer); s.end(() => { console.log(n); process.exit(0); }); });`);
  sleep(500);
  const before = { client: tcpStats(topo.client), server: tcpStats(topo.server) };

  const started = Date.now();
  const loop = nsExec(topo.router, process.execPath, [path.join(__dirname, '..', 'helpers', 'replace-loop.js'), String(CYCLES), ...files]);
  const seconds = (Date.now() - started) / 1000;
  t.equal(loop.status, 0, `${CYCLES} replacements in ${seconds.toFixed(1)} s ${loop.stderr}`);
  sleep(300);
  client.child.kill('SIGTERM');
  const sent = Number((await client.out).trim());
  const received = Number((await server.out).trim().split('\n').pop());
  const after = { client: tcpStats(topo.client), server: tcpStats(topo.server) };
  t.ok(sent > (seconds * 1000 / 2) * 1000 * 0.3, `the stream ran throughout (${(sent / 1e6).toFixed(1)} MB sent)`);
  t.equal(received, sent, 'every byte arrived');
  t.equal(after.client.RetransSegs! - before.client.RetransSegs!, 0, 'the sender retransmitted nothing (no segment was dropped)');
  t.equal(after.server.RetransSegs! - before.server.RetransSegs!, 0, 'nor did the receiver (no ACK was dropped)');

  t.equal(settledObjectCounts(idsBefore), idsBefore, 'the same number of programs, maps and links as before');
  const growth = unreclaimable() - slabBefore;
  t.ok(growth < 16 * 1024 * 1024, `unreclaimable kernel memory flat (${(growth / 1024 / 1024).toFixed(1)} MiB change)`);
});
