/**
 * Connection tracking states with real connections, compared with the
 * kernel's iptables: NEW, ESTABLISHED (both directions), RELATED (ICMP
 * errors for a tracked flow), INVALID (crafted bad TCP) and UNTRACKED
 * (raw-table NOTRACK), DNAT (a nat-table DNAT), the reply direction and
 * SEEN_REPLY status, all decided in FORWARD.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { nsExec, nsExecOk } from '../compat/lab';
import { TCP, tcpPacket, udpPacket } from '../compat/probes';
import { DiffPair } from './helpers/differential';
import { prepareState, requireKernel } from './helpers/env';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CT - [0:0]
-A FORWARD -i r0 -p udp -m conntrack --ctproto udp --ctorigdst 10.0.2.2 --ctorigdstport 9994 --ctreplsrc 10.0.2.2/24 --ctreplsrcport 9999 --ctrepldstport 1024:65535 --ctexpire 0:1000 -j DROP
-A FORWARD -i r0 -p udp -m conntrack --ctorigdstport 9993 ! --ctreplsrc 10.0.2.2 -j DROP
-A FORWARD -j CT
-A FORWARD -i r0 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i r0 -p udp -m multiport --dports 9997,9998,9999 -m state --state NEW -j ACCEPT
-A FORWARD -i r0 -p udp -m udp --dport 9999 -m conntrack --ctstate DNAT --ctdir ORIGINAL -j ACCEPT
-A FORWARD -i r0 -p udp -m udp --dport 7777 -m conntrack --ctstate UNTRACKED -j ACCEPT
-A CT -m conntrack --ctstate INVALID -j DROP
-A CT -p udp -m udp --sport 9997 -m conntrack --ctstatus SEEN_REPLY --ctdir REPLY -j DROP
-A CT -p udp -m udp --dport 9999 -m conntrack --ctstate DNAT ! --ctstatus SEEN_REPLY -j ACCEPT
-A CT -m state --state RELATED -j ACCEPT
-A CT -m conntrack --ctstate ESTABLISHED -j ACCEPT
COMMIT
`;

const AGENT = path.join(__dirname, 'helpers', 'agent.js');

function serve(ns: string, ports: number[]): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, AGENT, 'serve', ...ports.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    p.stdout!.once('data', () => resolve(p));
    p.once('exit', (c) => reject(new Error(`agent exited ${c}`)));
  });
}

function agent(ns: string, ...args: string[]): string {
  return nsExecOk(ns, process.execPath, [AGENT, ...args]).trim();
}

t.test('conntrack states decide like the kernel iptables', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore', 'iptables-legacy'])) return;
  prepareState();
  const pair = new DiffPair();
  const servers: ChildProcess[] = [];
  t.teardown(() => { for (const s of servers) s.stdin?.end(); pair.destroy(); });
  const r = pair.load(RULES);
  t.equal(r.oursStatus, 0, `our restore succeeded ${r.ours}`);
  for (const topo of [pair.legacy, pair.ours]) {
    // the same raw-table NOTRACK rule in both, to produce untracked packets
    const n = nsExec(topo.router, 'iptables-legacy', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '7777', '-j', 'CT', '--notrack']);
    t.equal(n.status, 0, `NOTRACK rule in ${topo.router} ${n.stderr}`);
    // and the same DNAT: 9990 becomes the server's 9999, so those flows are in state DNAT
    for (const port of ['9990', '9993', '9994']) {
      const d = nsExec(topo.router, 'iptables-legacy', ['-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '--dport', port, '-j', 'DNAT', '--to-destination', '10.0.2.2:9999']);
      t.equal(d.status, 0, `DNAT rule in ${topo.router} ${d.stderr}`);
    }
    servers.push(await serve(topo.server, [8080, 8081, 9999, 9997, 7777]));
    servers.push(await serve(topo.client, [8080]));
  }
  const flows: [string, string, string[], string][] = [
    ['tcp NEW then ESTABLISHED both ways', 'client', ['tcp', '10.0.2.2', '8080', '1500'], 'ok'],
    ['tcp to a port without a NEW rule', 'client', ['tcp', '10.0.2.2', '8081', '800'], 'timeout'],
    ['udp NEW and its ESTABLISHED reply', 'client', ['udp', '10.0.2.2', '9999', '1500'], 'ok'],
    ['udp to a closed port: the ICMP error is RELATED', 'client', ['udp', '10.0.2.2', '9998', '1500'], 'refused'],
    ['untracked udp is UNTRACKED, its reply is not', 'client', ['udp', '10.0.2.2', '7777', '800'], 'timeout'],
    ['udp through DNAT: DNAT and ORIGINAL, its reply DNAT before SEEN_REPLY', 'client', ['udp', '10.0.2.2', '9990', '1500'], 'ok'],
    ['udp whose replies (REPLY, SEEN_REPLY) are dropped', 'client', ['udp', '10.0.2.2', '9997', '800'], 'timeout'],
    ['udp through DNAT whose tuples, protocol and timeout match a DROP rule', 'client', ['udp', '10.0.2.2', '9994', '800'], 'timeout'],
    ['udp through DNAT whose reply source does not match an inverted DROP rule', 'client', ['udp', '10.0.2.2', '9993', '1500'], 'ok'],
    ['server-initiated tcp is NEW from the wrong side', 'server', ['tcp', '10.0.1.2', '8080', '800'], 'timeout'],
  ];
  for (const [name, from, args, expect] of flows) {
    const legacy = agent(from === 'client' ? pair.legacy.client : pair.legacy.server, ...args);
    const ours = agent(from === 'client' ? pair.ours.client : pair.ours.server, ...args);
    t.equal(ours, legacy, `${name}: bpftables ${ours}, iptables ${legacy}`);
    t.equal(legacy, expect, `${name}: oracle ${legacy} as the rules say`);
  }
  const C = '10.0.1.2', S = '10.0.2.2';
  const outcomes = pair.probe([
    { name: 'SYN+FIN is INVALID', where: 'forward', packet: tcpPacket(C, S, { sport: 5000, dport: 8080, flags: TCP.SYN | TCP.FIN }), expect: false },
    { name: 'SYN+RST is INVALID', where: 'forward', packet: tcpPacket(C, S, { sport: 5001, dport: 8080, flags: TCP.SYN | TCP.RST }), expect: false },
    { name: 'plain SYN is NEW', where: 'forward', packet: tcpPacket(C, S, { sport: 5002, dport: 8080, flags: TCP.SYN }), expect: true },
    { name: 'a new udp flow to 9999 is NEW', where: 'forward', packet: udpPacket(C, S, 5003, 9999), expect: true },
    { name: 'a new udp flow to 9996 has no rule', where: 'forward', packet: udpPacket(C, S, 5004, 9996), expect: false },
  ]);
  for (const o of outcomes) {
    t.equal(o.ours, o.legacy, `${o.name}: bpftables ${o.ours ? 'delivered' : 'dropped'}, iptables ${o.legacy ? 'delivered' : 'dropped'}`);
    t.equal(o.legacy, o.expect, `${o.name}: oracle as the rules say`);
  }
});
