/**
 * `bpftables demo`: the whole pipeline on a throwaway network. Three
 * namespaces (client — router — server) are created, fixtures/demo.rules is
 * restored into the router with bin/iptables-restore, crafted packets are
 * sent through, and each probe's fate is printed next to what the rules say
 * (from the reference interpreter). Everything is removed afterwards.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ensureStateRoot } from '../native/statefs';
import { evaluate, viewPacket } from '../xlate/eval';
import type { BuiltinChain } from '../xlate/ir';
import { parseRestore } from '../xlate/restore';
import type { Io } from './cli';
import { nsExec, RawReceiver, sendRaw, sleep, Topology } from './lab';
import { systemNameDb } from './namedb';
import { fixIpChecksum, icmpPacket, tcpPacket, udpPacket, TCP } from './probes';

const REPO = path.resolve(__dirname, '..', '..');

interface DemoProbe { label: string; hook: BuiltinChain; from: 'client' | 'router'; packet: Buffer }

const C = '10.0.1.2', R = '10.0.1.1', S = '10.0.2.2';
function probes(): DemoProbe[] {
  return [
    { label: 'SSH SYN client → router:22', hook: 'INPUT', from: 'client', packet: tcpPacket(C, R, { sport: 40001, dport: 22, flags: TCP.SYN }) },
    { label: 'SYN+ACK without a connection → router:22', hook: 'INPUT', from: 'client', packet: tcpPacket(C, R, { sport: 40002, dport: 22, flags: TCP.SYN | TCP.ACK }) },
    { label: 'telnet SYN → router:23', hook: 'INPUT', from: 'client', packet: tcpPacket(C, R, { sport: 40003, dport: 23, flags: TCP.SYN }) },
    { label: 'HTTPS SYN → router:443', hook: 'INPUT', from: 'client', packet: tcpPacket(C, R, { sport: 40004, dport: 443, flags: TCP.SYN }) },
    { label: 'HTTPS SYN from 10.0.1.150 (WEB returns)', hook: 'INPUT', from: 'client', packet: tcpPacket('10.0.1.150', R, { sport: 40005, dport: 443, flags: TCP.SYN }) },
    { label: 'DNS query → router:53/udp', hook: 'INPUT', from: 'client', packet: udpPacket(C, R, 40006, 53) },
    { label: 'NTP → router:123/udp', hook: 'INPUT', from: 'client', packet: udpPacket(C, R, 40007, 123) },
    { label: 'syslog → router:514/udp', hook: 'INPUT', from: 'client', packet: udpPacket(C, R, 40008, 514) },
    { label: 'ping → router', hook: 'INPUT', from: 'client', packet: icmpPacket(C, R, 8, 0) },
    { label: 'ICMP timestamp → router', hook: 'INPUT', from: 'client', packet: icmpPacket(C, R, 13, 0) },
    { label: 'SSH SYN from blocklisted 192.0.2.9', hook: 'INPUT', from: 'client', packet: tcpPacket('192.0.2.9', R, { sport: 40009, dport: 22, flags: TCP.SYN }) },
    { label: 'client → server:8080 SYN (forwarded)', hook: 'FORWARD', from: 'client', packet: tcpPacket(C, S, { sport: 40010, dport: 8080, flags: TCP.SYN }) },
    { label: 'client → server:8081 SYN (forwarded)', hook: 'FORWARD', from: 'client', packet: tcpPacket(C, S, { sport: 40011, dport: 8081, flags: TCP.SYN }) },
    { label: 'router → client:9/udp (discard)', hook: 'OUTPUT', from: 'router', packet: udpPacket(R, C, 40012, 9) },
    { label: 'router → client:7/udp (echo)', hook: 'OUTPUT', from: 'router', packet: udpPacket(R, C, 40013, 7) },
  ];
}

const IFACES: Record<BuiltinChain, { in?: string; out?: string }> = {
  INPUT: { in: 'r0' }, FORWARD: { in: 'r0', out: 'r1' }, OUTPUT: { out: 'r0' },
};

export function demo(io: Io, rulesFile = path.join(REPO, 'fixtures', 'demo.rules')): number {
  ensureStateRoot();
  const text = fs.readFileSync(rulesFile, 'utf8');
  const table = parseRestore(text, { file: path.basename(rulesFile), db: systemNameDb, counters: false }).tables[0]!;
  const topo = new Topology('demo');
  try {
    io.out(`bpftables demo: client (10.0.1.2) — router (10.0.1.1 | 10.0.2.1) — server (10.0.2.2)\n`);
    io.out(`restoring ${path.relative(process.cwd(), rulesFile) || rulesFile} into the router with bin/iptables-restore\n\n`);
    const r = nsExec(topo.router, path.join(REPO, 'bin', 'iptables-restore'), [rulesFile]);
    if (r.status !== 0) { io.err(r.stderr); return 1; }
    const list = probes();
    const local = [1, 6, 17].map((p) => new RawReceiver(topo.router, p));
    const fwd = new RawReceiver(topo.server, 0, 'wire');
    const out = new RawReceiver(topo.client, 0, 'wire');
    const ids = list.map((_, i) => 0x6000 + i);
    list.forEach((p, i) => {
      p.packet.writeUInt16BE(ids[i]!, 4);
      fixIpChecksum(p.packet);
      sendRaw(p.from === 'router' ? topo.router : topo.client, p.packet);
    });
    sleep(400);
    const seen = new Set<number>();
    const mark = (hook: BuiltinChain, pkts: Buffer[]): void => {
      for (const b of pkts) { const i = ids.indexOf(b.readUInt16BE(4)); if (i >= 0 && list[i]!.hook === hook) seen.add(i); }
    };
    for (const l of local) mark('INPUT', l.drain());
    mark('FORWARD', fwd.drain());
    mark('OUTPUT', out.drain());
    for (const rcv of [...local, fwd, out]) rcv.close();

    const rows = list.map((p, i) => {
      const d = evaluate(table, p.hook, viewPacket(p.packet, IFACES[p.hook], 'NEW'));
      const delivered = seen.has(i);
      const agree = (d.verdict === 'ACCEPT') === delivered;
      return [p.label, p.hook, `${d.verdict} (${d.by})`, delivered ? 'delivered' : 'dropped', agree ? 'ok' : 'MISMATCH'];
    });
    const head = ['probe', 'hook', 'the rules say', 'the kernel did', 'agree'];
    const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
    const fmt = (r: string[]): string => r.map((x, c) => x.padEnd(widths[c]!)).join('  ').trimEnd() + '\n';
    io.out(fmt(head));
    io.out(fmt(widths.map((w) => '-'.repeat(w))));
    for (const row of rows) io.out(fmt(row));
    const bad = rows.filter((r) => r[4] !== 'ok').length;
    io.out(`\n${rows.length - bad} of ${rows.length} probes behaved as the rules say.\n`);
    const save = nsExec(topo.router, path.join(REPO, 'bin', 'iptables-save'), ['-c']);
    io.out(`\nlive ruleset with counters (bin/iptables-save -c in the router):\n${save.stdout}`);
    return bad === 0 ? 0 : 1;
  } finally {
    topo.destroy();
    io.out('namespaces removed.\n');
  }
}

