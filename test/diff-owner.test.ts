/**
 * -m owner in OUTPUT through the kernel, beside iptables-legacy: datagrams
 * sent by processes of different users and groups from the router, and
 * packets the kernel sends itself (an ICMP error: a socket without a file);
 * each seen on the client's wire, or not, alike in both engines.
 */
import path from 'node:path';
import t from 'tap';
import { nsExec, RawReceiver, sendRaw, sleep, type Topology } from '../compat/lab';
import { udpPacket } from '../compat/probes';
import { DiffPair } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

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

const NFT_RULES = `table inet o {
	chain output {
		type filter hook output priority 0; policy accept;
		udp dport 7510 meta skuid 65534 drop
		udp dport 7511 meta skuid != 0-10 drop
		udp dport 7512 meta skgid { 1, 65534 } drop
		udp dport 7513 skuid nobody drop
		icmp type destination-unreachable meta skuid != 0 drop
	}
}
`;

t.test("meta skuid and skgid match the socket's owner like the kernel's nft", async (t) => {
  if (!requireKernel(t, ['nft', 'setpriv', 'bash'])) return;
  prepareState();
  const pair = new DiffPair(4);
  t.teardown(() => pair.destroy());
  t.equal(nsExec(pair.legacy.router, 'nft', ['-f', '-'], NFT_RULES).status, 0, "the kernel's nft loads the rules");
  const ours = nsExec(pair.ours.router, path.join(BIN, 'nft'), ['-f', '-'], NFT_RULES);
  t.equal(ours.status, 0, `bpftables loads them ${ours.stderr}`);
  let dropped = 0;
  for (const dport of [7510, 7511, 7512, 7513]) {
    for (const [user, uid] of USERS) {
      const legacy = sentAs(pair.legacy, uid, dport);
      if (!legacy) dropped++;
      t.equal(sentAs(pair.ours, uid, dport), legacy, `port ${dport}, sent by ${user}: ${legacy ? 'delivered' : 'dropped'} by both`);
    }
  }
  t.ok(dropped >= 4 && dropped <= 8, `the rules drop some and pass others (${dropped} of 12 dropped)`);
  // the router's own ICMP error has no socket with a file: nft's != does not match it (iptables' ! --uid-owner does)
  const legacy = kernelAnswer(pair.legacy);
  t.equal(kernelAnswer(pair.ours), legacy, `the kernel's own ICMP error: ${legacy ? 'delivered' : 'dropped'} by both`);
  t.ok(legacy, 'and nft lets it through');
  const input = nsExec(pair.ours.router, path.join(BIN, 'nft'), ['-f', '-'], 'table ip i {\n\tchain input {\n\t\ttype filter hook input priority 0;\n\t\tmeta skuid 0 accept\n\t}\n}\n');
  t.match(input, { status: 1, stderr: /meta skuid and skgid outside an output chain \(input\) is not supported/ }, 'outside an output chain: refused by name');
});
