/**
 * limit buckets and nth counters survive a ruleset replacement when their
 * rule is unchanged (wherever it moved), and start afresh when it changed:
 * real packets delivered to a router namespace, counted after INPUT.
 */
import t from 'tap';
import path from 'node:path';
import { nsExec, RawReceiver, sendRaw, sleep, Topology } from '../compat/lab';
import { udpPacket } from '../compat/probes';
import { BIN, prepareState, requireKernel } from './helpers/env';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9600 -m limit --limit 1/hour --limit-burst 2 -j ACCEPT
-A INPUT -p udp -m udp --dport 9600 -j DROP
-A INPUT -p udp -m udp --dport 9601 -m statistic --mode nth --every 3 --packet 0 -j ACCEPT
-A INPUT -p udp -m udp --dport 9601 -j DROP
COMMIT
`;

t.test('limit and nth state is kept across replacements for unchanged rules', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const topo = new Topology('K');
  t.teardown(() => topo.destroy());
  const run = (cmd: string, args: string[], input?: string): void => {
    const r = nsExec(topo.router, path.join(BIN, cmd), args, input);
    t.equal(r.status, 0, `${cmd} ${args.join(' ')} ${r.stderr}`);
  };
  /** how many of `n` datagrams to `dport` were delivered */
  const delivered = (dport: number, n: number): number => {
    const rx = new RawReceiver(topo.router, 17);
    try {
      for (let i = 0; i < n; i++) sendRaw(topo.client, udpPacket('10.0.1.2', '10.0.1.1', 5000 + i, dport));
      sleep(150);
      return rx.drain().filter((b) => b.readUInt16BE(22) === dport).length;
    } finally { rx.close(); }
  };
  run('iptables-restore', [], RULES);
  t.equal(delivered(9600, 3), 2, 'the burst of 2 passes, then the bucket is empty');
  t.equal(delivered(9601, 2), 1, 'nth: the first of every 3 passes');
  run('iptables', ['-I', 'INPUT', '1', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
  t.equal(delivered(9600, 1), 0, 'a rule inserted above: the limit\'s bucket is still empty');
  t.equal(delivered(9601, 1), 0, 'and the nth counter went on (third packet of three)');
  run('iptables-restore', [], RULES);
  t.equal(delivered(9600, 1), 0, 'the same rules restored again: still empty');
  t.equal(delivered(9601, 1), 1, 'nth: the next cycle begins where it left off');
  run('iptables', ['-R', 'INPUT', '1', '-p', 'udp', '--dport', '9600', '-m', 'limit', '--limit', '1/hour', '--limit-burst', '3', '-j', 'ACCEPT']);
  t.equal(delivered(9600, 4), 3, 'the rule changed (burst 3): a fresh bucket');
});
