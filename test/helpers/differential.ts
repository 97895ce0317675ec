/**
 * Differential testing through the kernel: two identical topologies, the
 * kernel's iptables-legacy in one router, bpftables in the other; the same
 * crafted packets go through both and the delivered/dropped outcomes are
 * compared probe by probe.
 */
import path from 'node:path';
import { fixIpChecksum } from '../../compat/probes';
import { BIN } from './env';
import { nsExec, RawReceiver, sendRaw, sleep, Topology } from '../../compat/lab';

export type Where = 'input' | 'forward' | 'output';

export interface ProbeSpec {
  name: string;
  where: Where;
  /** the IPv4 packet; its IP ID is rewritten to identify the probe */
  packet: Buffer;
  /** what the rules say should happen (checked against both engines) */
  expect?: boolean;
}

export interface Outcome { name: string; where: Where; legacy: boolean; ours: boolean; expect?: boolean }

export class DiffPair {
  readonly legacy = new Topology('L');
  readonly ours = new Topology('B');

  /** Load the same iptables-save text with each engine; returns our restore's stderr. */
  load(rules: string): { legacy: string; ours: string; oursStatus: number | null } {
    const l = nsExec(this.legacy.router, 'iptables-legacy-restore', [], rules);
    if (l.status !== 0) throw new Error(`iptables-legacy-restore failed: ${l.stderr}`);
    const o = nsExec(this.ours.router, path.join(BIN, 'iptables-restore'), [], rules);
    return { legacy: l.stderr, ours: o.stderr, oursStatus: o.status };
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

  probe(probes: ProbeSpec[]): Outcome[] {
    const ids = probes.map((_, i) => 0x5000 + i);
    const l = DiffPair.sendAll(this.legacy, probes, ids);
    const o = DiffPair.sendAll(this.ours, probes, ids);
    return probes.map((p, i) => ({ name: p.name, where: p.where, legacy: l.has(i), ours: o.has(i), expect: p.expect }));
  }

  destroy(): void {
    this.legacy.destroy();
    this.ours.destroy();
  }
}
