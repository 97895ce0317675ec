/**
 * Differential testing through the kernel: two identical topologies, the
 * kernel's iptables-legacy (or ip6tables-legacy) in one router, bpftables in
 * the other; the same crafted packets go through both and the
 * delivered/dropped outcomes are compared probe by probe.
 *
 * IPv4 probes are told apart by their IP ID, IPv6 probes by their flow label.
 * What was forwarded or sent is seen on the wire of the next host; what was
 * delivered locally is seen by a raw socket (IPv4, which sees the header) or
 * by an nft counter per flow label in a chain after the filter hook (IPv6,
 * whose raw sockets do not show the header).
 */
import path from 'node:path';
import type { Test } from 'tap';
import { fixIpChecksum } from '../../compat/probes';
import { BIN } from './env';
import { nsExec, nsExecOk, RawReceiver, sendRaw, sendRaw6, sleep, Topology } from '../../compat/lab';
import type { Family } from '../../xlate/ir';

export type Where = 'input' | 'forward' | 'output';

export interface ProbeSpec {
  name: string;
  where: Where;
  /** the IPv4 packet (its IP ID is rewritten to identify the probe) or IPv6 packet (its flow label is) */
  packet: Buffer;
  /** what the rules say should happen (checked against both engines) */
  expect?: boolean;
}

export interface Outcome { name: string; where: Where; legacy: boolean; ours: boolean; expect?: boolean }

export class DiffPair {
  readonly legacy = new Topology('L');
  readonly ours = new Topology('B');
  constructor(readonly family: Family = 4) {}

  /** Load the same iptables-save text with each engine; returns our restore's stderr. */
  load(rules: string): { legacy: string; ours: string; oursStatus: number | null } {
    const ip = this.family === 6 ? 'ip6tables' : 'iptables';
    const l = nsExec(this.legacy.router, `${ip}-legacy-restore`, [], rules);
    if (l.status !== 0) throw new Error(`${ip}-legacy-restore failed: ${l.stderr}`);
    const o = nsExec(this.ours.router, path.join(BIN, `${ip}-restore`), [], rules);
    return { legacy: l.stderr, ours: o.stderr, oursStatus: o.status };
  }

  private static sendAll6(topo: Topology, probes: ProbeSpec[], ids: number[]): Set<number> {
    // delivered locally = seen by a chain after the filter table's INPUT hook (priority 0)
    const observer = ['add table ip6 bpft_obs', 'add chain ip6 bpft_obs seen { type filter hook input priority 100; policy accept; }',
      ...ids.map((id) => `add rule ip6 bpft_obs seen ip6 flowlabel ${id} counter`), ''].join('\n');
    nsExecOk(topo.router, 'nft', ['-f', '-'], observer);
    const fwd = new RawReceiver(topo.server, 0, 'wire6');
    const out = new RawReceiver(topo.client, 0, 'wire6');
    try {
      probes.forEach((p, i) => {
        const pkt = Buffer.from(p.packet);
        pkt.writeUInt32BE(((pkt.readUInt32BE(0) & 0xfff00000) | ids[i]!) >>> 0, 0);
        sendRaw6(p.where === 'output' ? topo.router : topo.client, pkt);
      });
      sleep(300);
      const seen = new Set<number>();
      const note = (where: Where, pkts: Buffer[]): void => {
        for (const b of pkts) {
          const i = ids.indexOf(b.readUInt32BE(0) & 0xfffff);
          if (i >= 0 && probes[i]!.where === where) seen.add(i);
        }
      };
      note('forward', fwd.drain());
      note('output', out.drain());
      const listing = nsExecOk(topo.router, 'nft', ['list', 'table', 'ip6', 'bpft_obs']);
      for (const m of listing.matchAll(/flowlabel (\d+) counter packets (\d+)/g)) {
        const i = ids.indexOf(Number(m[1]));
        if (i >= 0 && probes[i]!.where === 'input' && Number(m[2]) > 0) seen.add(i);
      }
      return seen;
    } finally {
      for (const r of [fwd, out]) r.close();
      nsExec(topo.router, 'nft', ['delete', 'table', 'ip6', 'bpft_obs']);
    }
  }

  private static sendAll(topo: Topology, probes: ProbeSpec[], ids: number[]): Set<number> {
    const recv = {
      input: new Set(probes.filter((p) => p.where === 'input').map((p) => p.packet[9]!)),
    };
    const local = [...recv.input].map((proto) => new RawReceiver(topo.router, proto));
    const fwd = new RawReceiver(topo.server, 0, 'wire');
    const out = new RawReceiver(topo.client, 0, 'wire');
    try {
      probes.forEach((p, i) => {
        const pkt = Buffer.from(p.packet);
        pkt.writeUInt16BE(ids[i]!, 4);
        fixIpChecksum(pkt);
        sendRaw(p.where === 'output' ? topo.router : topo.client, pkt);
      });
      sleep(300);
      const seen = new Set<number>();
      const note = (where: Where, pkts: Buffer[]): void => {
        for (const b of pkts) {
          const id = b.readUInt16BE(4);
          const i = ids.indexOf(id);
          if (i >= 0 && probes[i]!.where === where && b[9] === probes[i]!.packet[9]) seen.add(i);
        }
      };
      for (const r of local) note('input', r.drain());
      note('forward', fwd.drain());
      note('output', out.drain());
      return seen;
    } finally {
      for (const r of [...local, fwd, out]) r.close();
    }
  }

  /** Send the probes (of `family`: the pair's own unless said) through both and say what each did. */
  probe(probes: ProbeSpec[], family: Family = this.family): Outcome[] {
    const ids = probes.map((_, i) => 0x5000 + i);
    const send = family === 6 ? DiffPair.sendAll6 : DiffPair.sendAll;
    const l = send(this.legacy, probes, ids);
    const o = send(this.ours, probes, ids);
    return probes.map((p, i) => ({ name: p.name, where: p.where, legacy: l.has(i), ours: o.has(i), expect: p.expect }));
  }

  destroy(): void {
    this.legacy.destroy();
    this.ours.destroy();
  }
}


/** Every probe must fare alike in both engines, and the oracle must do what the rules say (when a probe says). */
export function checkOutcomes(t: Test, outcomes: Outcome[], oracle = 'iptables', ours = 'bpftables'): void {
  for (const o of outcomes) {
    t.equal(o.ours, o.legacy, `${o.name}: ${ours} ${o.ours ? 'delivered' : 'dropped'}, ${oracle} ${o.legacy ? 'delivered' : 'dropped'}`);
    if (o.expect !== undefined) t.equal(o.legacy, o.expect, `${o.name}: oracle behaves as the rules say`);
  }
}
