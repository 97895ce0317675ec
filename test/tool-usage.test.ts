/**
 * Driving iptables and ip6tables the way real tools do (fail2ban's ban and
 * unban, Docker's DOCKER-USER hook, a kube-proxy-like `restore --noflush`,
 * scripts parsing `-L --line-numbers`): the same command sequence runs
 * against iptables-legacy in one router and bpftables in another, every
 * output and exit status must match, and after each stage the same packets
 * must be delivered or dropped in both.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { nsExec } from '../compat/lab';
import { TCP, tcp6Packet, tcpPacket, udp6Packet, udpPacket } from '../compat/probes';
import { DiffPair, type ProbeSpec } from './helpers/differential';
import { BIN, prepareState, requireKernel } from './helpers/env';

type Step = { args: string[]; input?: string; restore?: boolean };

function run(t: Test, pair: DiffPair, steps: Step[]): void {
  const cmd = pair.family === 6 ? 'ip6tables' : 'iptables';
  for (const s of steps) {
    const tool = s.restore ? `${cmd}-restore` : cmd;
    const l = nsExec(pair.legacy.router, s.restore ? `${cmd}-legacy-restore` : `${cmd}-legacy`, s.args, s.input);
    const o = nsExec(pair.ours.router, path.join(BIN, tool), s.args, s.input);
    const label = `${tool} ${s.args.join(' ')}`;
    t.equal(o.status, l.status, `${label}: exit ${l.status}`);
    t.equal(o.stdout, l.stdout, `${label}: stdout`);
    t.equal(o.stderr.replace('v1.8.11 (bpftables)', 'VER'), l.stderr.replace('v1.8.9 (legacy)', 'VER'), `${label}: stderr`);
  }
}

function probe(t: Test, pair: DiffPair, stage: string, probes: ProbeSpec[]): void {
  for (const o of pair.probe(probes)) {
    t.equal(o.ours, o.legacy, `${stage}: ${o.name}: bpftables ${o.ours ? 'delivered' : 'dropped'}, legacy ${o.legacy ? 'delivered' : 'dropped'}`);
    if (o.expect !== undefined) t.equal(o.legacy, o.expect, `${stage}: ${o.name}: as intended`);
  }
}

/** The line number of the first rule whose listing line contains `needle`, as scripts find it. */
function lineOf(listing: string, needle: string): string {
  return listing.split('\n').find((l) => l.includes(needle))?.split(/\s+/)[0] ?? '';
}

for (const family of [4, 6] as const) {
  t.test(`${family === 6 ? 'ip6tables' : 'iptables'} driven like fail2ban, Docker and kube-proxy`, async (t) => {
    if (!requireKernel(t, [family === 6 ? 'ip6tables-legacy' : 'iptables-legacy', 'nft'])) return;
    prepareState();
    const pair = new DiffPair(family);
    t.teardown(() => pair.destroy());
    const [C, R, S, other] = family === 6 ? ['fd00:1::2', 'fd00:1::1', 'fd00:2::2', 'fd00:1::3'] : ['10.0.1.2', '10.0.1.1', '10.0.2.2', '10.0.1.3'];
    const tcp = (src: string, dst: string, dport: number): Buffer => (family === 6 ? tcp6Packet : tcpPacket)(src, dst, { sport: 40000, dport, flags: TCP.SYN });
    const udp = (src: string, dst: string, dport: number): Buffer => (family === 6 ? udp6Packet : udpPacket)(src, dst, 5000, dport);
    const A = (l: string): Step => ({ args: l.split(' ') });

    // fail2ban: its chain hooked in at position 1, then a ban
    run(t, pair, ['-N f2b-sshd', '-A f2b-sshd -j RETURN', '-I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd',
      '-C INPUT -p tcp -m multiport --dports 22 -j f2b-sshd',
      // (ip6tables-legacy 1.8.9 wrongly finds a multiport rule with other ports; checked for iptables only)
      ...(family === 4 ? ['-C INPUT -p tcp -m multiport --dports 23 -j f2b-sshd'] : []), '-C INPUT -p udp -j f2b-sshd',
      `-I f2b-sshd 1 -s ${C} -j REJECT`.replace('REJECT', 'DROP'), '-A INPUT -p tcp --dport 22 -j ACCEPT', '-P INPUT DROP'].map(A));
    probe(t, pair, 'banned', [
      { name: 'ssh from the banned client', where: 'input', packet: tcp(C, R, 22), expect: false },
      { name: 'ssh from another host', where: 'input', packet: tcp(other, R, 22), expect: true },
    ]);
    // unban: find the rule's number in the listing, as scripts do, and delete by number
    const listing = nsExec(pair.ours.router, path.join(BIN, family === 6 ? 'ip6tables' : 'iptables'), ['-n', '-L', 'f2b-sshd', '--line-numbers']).stdout;
    const num = lineOf(listing, C);
    t.equal(num, '1', 'the ban is rule 1 of f2b-sshd in the listing');
    run(t, pair, [A('-n -L f2b-sshd --line-numbers'), A(`-D f2b-sshd ${num}`), A('-S f2b-sshd')]);
    probe(t, pair, 'unbanned', [{ name: 'ssh from the client again', where: 'input', packet: tcp(C, R, 22), expect: true }]);

    // Docker: DOCKER-USER hooked from FORWARD, a user rule inserted at 1
    run(t, pair, ['-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', '-A DOCKER-USER -j RETURN',
      '-I DOCKER-USER -i r0 -p tcp --dport 25 -j DROP', '-A FORWARD -p tcp -j ACCEPT', '-P FORWARD DROP'].map(A));
    probe(t, pair, 'docker-user', [
      { name: 'smtp forwarded', where: 'forward', packet: tcp(C, S, 25), expect: false },
      { name: 'http forwarded', where: 'forward', packet: tcp(C, S, 80), expect: true },
      { name: 'udp forwarded', where: 'forward', packet: udp(C, S, 53), expect: false },
    ]);

    // kube-proxy: a restore --noflush that declares (and so flushes) its own chains only
    const kube = `*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-A INPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n` +
      `-A KUBE-SERVICES -d ${R} -p udp -m comment --comment "default/dns cluster IP" -m udp --dport 53 -j KUBE-SVC-A\n-A KUBE-SVC-A -j ACCEPT\nCOMMIT\n`;
    run(t, pair, [{ args: ['--noflush'], input: kube, restore: true }, { args: ['--noflush'], input: kube.replace(':KUBE-SVC-A - [0:0]\n', ':KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j DROP\n').replace('-A INPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n', ''), restore: true },
      A('-S'), A('-L -n'), { args: ['-D', 'INPUT', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
      A('-D INPUT -m comment --comment two words -j KUBE-SERVICES'), A('-L INPUT -n --line-numbers')]);
    probe(t, pair, 'kube', [{ name: 'dns to the service IP', where: 'input', packet: udp(C, R, 53), expect: false }]);
  });
}
