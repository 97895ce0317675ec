/**
 * -m owner in OUTPUT through the kernel, beside iptables-legacy: datagrams
 * sent by processes of different users and groups from the router, and
 * packets the kernel sends itself (an ICMP error: a socket without a file);
 * each seen on the client's wire, or not, alike in both engines.
 */
import t from 'tap';
import { nsExec, RawReceiver, sendRaw, sleep, type Topology } from '../compat/lab';
import { udpPacket } from '../compat/probes';
import { DiffPair } from './helpers/differential';
import { prepareState, requireKernel } from './helpers/env';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 7500 -m owner --uid-owner 65534 -j DROP
-A OUTPUT -p udp -m udp --dport 7501 -m owner ! --uid-owner 0-10 -j DROP
-A OUTPUT -p udp -m udp --dport 7502 -m owner --gid-owner 65534 -j DROP
-A OUTPUT -p udp -m udp --dport 7503 -m owner ! --socket-exists -j DROP
-A OUTPUT -p udp -m udp --dport 7504 -m owner --socket-exists --uid-owner 0 -j DROP
-A OUTPUT -p udp -m udp --dport 7505 -m owner ! --gid-owner 65534 ! --uid-owner 65534 -j DROP
-A OUTPUT -p icmp -m icmp --icmp-type 3/3 -m owner ! --uid-owner 0 -j DROP
COMMIT
`;

const USERS = [['root', '0'], ['nobody', '65534'], ['daemon', '1']] as const;

/** Does a datagram a process of `uid` sends from the router to the client at `dport` get out? */
function sentAs(topo: Topology, uid: string, dport: number): boolean {
  const rx = new RawReceiver(topo.client, 0, 'wire');
  try {
    // (a datagram dropped in OUTPUT fails the write with EPERM: the outcome is read on the wire)
    nsExec(topo.router, 'setpriv', ['--reuid', uid, '--regid', uid, '--clear-groups', 'bash', '-c', `echo probe > /dev/udp/10.0.1.2/${dport}`]);
    sleep(100);
    return rx.drain().some((b) => b[9] === 17 && b.readUInt16BE(22) === dport);
  } finally { rx.close(); }
}

/** Does the router's own "port unreachable" for a datagram to a closed port reach the client? */
function kernelAnswer(topo: Topology): boolean {
  const rx = new RawReceiver(topo.client, 1, 'wire');
  try {
    sendRaw(topo.client, udpPacket('10.0.1.2', '10.0.1.1', 5000, 7599));
    sleep(150);
    return rx.drain().some((b) => b[9] === 1 && b[20] === 3 && b[21] === 3);
  } finally { rx.close(); }
}

t.test('owner matches the socket\'s owner like iptables-legacy', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore', 'setpriv', 'bash'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  t.equal(pair.load(RULES).oursStatus, 0, 'our restore succeeded');
  let dropped = 0;
  for (const dport of [7500, 7501, 7502, 7503, 7504, 7505]) {
    for (const [user, uid] of USERS) {
      const legacy = sentAs(pair.legacy, uid, dport);
      const ours = sentAs(pair.ours, uid, dport);
      if (!legacy) dropped++;
      t.equal(ours, legacy, `port ${dport}, sent by ${user}: ${legacy ? 'delivered' : 'dropped'} by both`);
    }
  }
  t.ok(dropped >= 5 && dropped <= 13, `the rules drop some and pass others (${dropped} of 18 dropped)`);
  const legacy = kernelAnswer(pair.legacy);
  t.equal(kernelAnswer(pair.ours), legacy, `the kernel's own ICMP error (a socket without a file): ${legacy ? 'delivered' : 'dropped'} by both`);
});
