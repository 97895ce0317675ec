/**
 * bin/iptables and bin/ip6tables against iptables-legacy and
 * ip6tables-legacy: the same command sequence in two namespaces, identical
 * stdout, stderr (version string aside) and exit status at every step; and
 * a rule added with -A is enforced.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ip, nsExec, RawReceiver, sendRaw, sleep, Topology, uniqueName } from '../compat/lab';
import { TCP, tcpPacket } from '../compat/probes';
import { BIN, prepareState, requireKernel } from './helpers/env';

const SEQUENCE: string[][] = [
  ['-N', 'X'], ['-N', 'X'],
  ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
  ['-A', 'INPUT', '-s', '10.0.0.0/8', '-j', 'X'],
  ['-I', 'INPUT', '-p', 'udp', '--dport', '53', '-j', 'ACCEPT'],
  ['-I', 'INPUT', '2', '-m', 'comment', '--comment', 'two words', '-j', 'ACCEPT'],
  ['-I', 'INPUT', '9', '-j', 'ACCEPT'],
  ['-A', 'X', '-p', 'icmp', '--icmp-type', 'echo-request', '-j', 'DROP'],
  ['-C', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
  ['-C', 'INPUT', '-p', 'tcp', '--dport', '23', '-j', 'ACCEPT'],
  ['-D', 'INPUT', '-p', 'tcp', '--dport', '23', '-j', 'ACCEPT'],
  ['-R', 'INPUT', '1', '-p', 'udp', '-m', 'udp', '--dport', '5353', '-j', 'ACCEPT'],
  ['-R', 'INPUT', '9', '-j', 'ACCEPT'],
  ['-D', 'INPUT', '9'],
  ['-P', 'X', 'DROP'], ['-P', 'INPUT', 'FOO'], ['-P', 'FORWARD', 'DROP'],
  ['-X', 'X'], ['-X', 'NOPE'], ['-A', 'NOPE', '-j', 'ACCEPT'], ['-A', 'INPUT', '-j', 'NOWHERE'],
  ['-A', 'INPUT', '--dport', '22'], ['-A', 'INPUT', '-m', 'nosuch'], ['-N', 'Z', '-s', '1.2.3.4'], ['-A', 'INPUT', '-D', 'INPUT'],
  ['-S'], ['-S', 'INPUT'], ['-S', 'X'], ['-S', 'INPUT', '2'],
  ['-E', 'X', 'Y'], ['-S'],
  ['-D', 'INPUT', '2'], ['-D', 'INPUT', '-s', '10.0.0.0/8', '-j', 'Y'],
  ['-F', 'Y'], ['-X', 'Y'], ['-X'], ['-Z'], ['-S', '-v'],
  ['-A', 'OUTPUT', '-i', 'eth0', '-j', 'DROP'], ['-t', 'bogus', '-S'],
  ['-N', 'LONGCHAINNAMEXXXXXXXXXXXXXXXXXXXXX'],
  // (iptables 1.8.9 refuses '--protocol=tcp'; 1.8.11's own tests accept it, checked in conformance-t)
  ['--append', 'INPUT', '--protocol', 'tcp', '--destination-port', '80', '--jump', 'ACCEPT'],
  ['-m', 'comment', '--comment', 'any order', '-p', 'tcp', '-A', 'INPUT', '-d', '192.0.2.1', '--dport', '443', '-j', 'DROP'],
  ['-S'], ['-F'], ['-S'],
  // address lists and host names: one rule per source × destination
  ...[
    '-A INPUT -s 1.2.3.4,5.6.7.8 -d localhost,10.0.0.0/8 -j DROP', '-S',
    '-C INPUT -s 1.2.3.4,5.6.7.8 -d localhost,10.0.0.0/8 -j DROP',
    '-D INPUT -s 1.2.3.4 -d localhost,10.0.0.0/8 -j DROP', '-S',
    '-A INPUT ! -s 1.2.3.4,5.6.7.8 -j DROP', '-R INPUT 1 -s 1.1.1.1,2.2.2.2 -j ACCEPT',
    '-A INPUT -s nonexistent.invalid -j DROP', '-A INPUT -s 1.2.3.4/33 -j DROP',
    '-I INPUT 2 -d 9.9.9.9,8.8.8.8 -j ACCEPT', '-S',
    // -v: what each change is about to do
    '-N foo', '-N bar', '-v -A FORWARD -o eth1 ! -i lo -f -p tcp -m multiport --dports 1,2 -g bar', '-v -I INPUT 9 -m conntrack --ctstate NEW',
    '-v -C INPUT -m conntrack --ctstate NEW', '-v -R INPUT 1 -p icmp --icmp-type 8 -j DROP', '-v -D INPUT 2',
    '-v -A INPUT -s 1.2.3.4,5.6.7.8 -d 10.0.0.0/8 -p udp --dport 53 -j foo', '-v -D INPUT -s 1.2.3.4 -d 10.0.0.0/8 -p udp --dport 53 -j foo',
    '-v -X bar', '-v -Z INPUT', '-v -F INPUT', '-v -F', '-v -X', '-v -A INPUT -s 10.0.0.1/255.0.255.0 ! -d 1.1.1.1 -j ACCEPT',
    '-A INPUT -p tcp -m multiport --dports 7000:7000', '-A INPUT -p tcp -m multiport --dports 1,3:2', '-A INPUT -p udp -m multiport --ports :5',
    '-A INPUT -p tcp -m multiport --sports 1:2:3', '-A INPUT -p tcp -m multiport --dports 7000:7001,9', '-S INPUT',
    '-v -A OUTPUT -p 47', '-v -A OUTPUT ! -p udp -o lo+ -m length --length 3:4 -m ttl --ttl-gt 3 -m iprange --src-range 1.1.1.1-1.1.1.2',
    // numbers as iptables reads them (strtoul, base 0): hex and octal
    '-A INPUT -p icmp --icmp-type 0x3/0x1 -m length --length 0x10:0xffff -m ttl --ttl-lt 010', '-S INPUT',
  ].map((l) => l.split(' ')),
];

/** Run each command in a fresh iptables-legacy namespace and a fresh bpftables one; compare everything printed. */
async function compareWithLegacy(t: Test, steps: string[][], tag: string, cmd = 'iptables'): Promise<void> {
  if (!requireKernel(t, [`${cmd}-legacy`])) return;
  prepareState();
  const legacy = uniqueName(`${tag}l`), ours = uniqueName(`${tag}o`);
  ip('netns', 'add', legacy); ip('netns', 'add', ours);
  t.teardown(() => { nsExec(ours, path.join(BIN, 'bpftables'), ['flush']); ip('netns', 'del', legacy); ip('netns', 'del', ours); });
  for (const args of steps) {
    const l = nsExec(legacy, `${cmd}-legacy`, args);
    const o = nsExec(ours, path.join(BIN, cmd), args);
    const label = `${cmd} ${args.join(' ')}`;
    t.equal(o.status, l.status, `${label}: exit ${l.status}`);
    t.equal(o.stdout, l.stdout, `${label}: stdout`);
    t.equal(o.stderr.replace('v1.8.11 (bpftables)', 'VER'), l.stderr.replace('v1.8.9 (legacy)', 'VER'), `${label}: stderr`);
  }
}

t.test('iptables commands behave like iptables-legacy', (t) => compareWithLegacy(t, SEQUENCE, 'I'));

/** Rules exercising every match's -L rendering, then every listing flavour. */
const LISTING: string[][] = [
  ...[
    '-N USR', '-N USR2',
    '-A INPUT -p tcp --dport 22 -j ACCEPT',
    '-A INPUT ! -s 10.0.0.0/8 -d 192.168.1.1 -i eth0 -p udp --sport 53 -j USR',
    '-A INPUT -f -j DROP',
    '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED',
    '-A USR -p tcp -m multiport --dports 80,443:445 -m state --state NEW -g USR2',
    '-A USR2 -m iprange --src-range 1.2.3.4-1.2.3.9 -m length --length 100:200 -m ttl --ttl-gt 5 -j RETURN',
    '-A OUTPUT -o lo -p tcp --tcp-flags SYN,ACK SYN ! --sport 1000:2000 -j DROP',
    '-A OUTPUT -s 10.0.0.0/255.0.255.0 -p 47',
    '-A INPUT -p tcp -m multiport ! --dports 80,443 -m state ! --state NEW -m conntrack ! --ctstate INVALID -j ACCEPT',
    '-A INPUT -m iprange ! --src-range 1.2.3.4-1.2.3.9 --dst-range 5.6.7.8-5.6.7.9 -m length ! --length 100 -m ttl ! --ttl-eq 3 -m ttl --ttl-lt 9',
    '-A INPUT -p icmp ! --icmp-type 3/1', '-A INPUT -p icmp --icmp-type any', '-A INPUT -p icmp --icmp-type 3',
    '-A INPUT -p tcp ! --syn ! --dport 22',
    '-A FORWARD ! -i eth+ ! -o lo -p udp ! --sport 1:2 -s 127.0.0.1',
    '-A INPUT ! -p tcp ! -f', '-A INPUT -p tcp --tcp-flags ALL NONE', '-A INPUT -p udp -m multiport --ports 53,1000:2000',
    '-A INPUT -s 127.0.0.1 -d 10.1.2.3/32 -j USR2', '-P FORWARD DROP',
    '-A INPUT -m limit --limit 7/min --limit-burst 9 -m limit --limit 1500/min -m statistic --mode random ! --probability 0.3',
    '-A INPUT -m mark ! --mark 3/4 -m pkttype ! --pkt-type broadcast -m dscp ! --dscp-class AF41 -m tos ! --tos 4',
    '-A INPUT -m statistic --mode nth --every 7 --packet 0 -m pkttype --pkt-type host -m tos --tos Minimize-Cost -m limit --limit 3/mi',
    '-A INPUT -m statistic --mode nth ! --every 3 --packet 2 -m mark --mark 0xffffffff/0xffffffff -m tos --tos 0x1f/0x0f -j ACCEPT',
    '-A INPUT -m limit --limit 2/day --limit-burst 1 -m mark --mark 1/0 -m statistic --mode random --probability 1 -m dscp --dscp 0x3f',
    '-A INPUT -m limit --limit 1/d', '-A INPUT -m limit --limit 0/sec', '-A INPUT -m limit --limit 20000/sec', '-A INPUT -m limit --limit-burst 10001',
    '-A INPUT -m pkttype --pkt-type loopback', '-A INPUT -m statistic --mode nth --every 5', '-A INPUT -m statistic ! --mode random',
    '-A INPUT -m limit --limit 1/x', '-A INPUT -m pkttype --pkt-type Unicast -m limit',
    '-S INPUT', '-v -A INPUT -m limit --limit 5/sec -m mark --mark 7', '-A INPUT -m tos ! --tos Normal-Service -m ttl ! --ttl-lt 5',
    '-A INPUT -m limit ! --limit 5', '-A INPUT -m mark --mark 1 --mark 2', '-A INPUT -p tcp --sport 1 --sport 2', '-A INPUT -p udp --dport 1 --dport 2',
    '-A INPUT -m conntrack --ctstatus NONE,ASSURED ! --ctdir REPLY', '-A INPUT -m conntrack ! --ctstatus CONFIRMED --ctdir original --ctstate SNAT,NEW',
    '-A INPUT -m conntrack ! --ctstate DNAT ! --ctstatus EXPECTED,SEEN_REPLY -m state --state SNAT', '-A INPUT -m conntrack --ctdir BOTH',
    '-A INPUT -m conntrack --ctstatus FOO', '-L INPUT', '-S INPUT',
    '-A INPUT -m conntrack --ctdir REPLY ! --ctexpire 3:9 --ctstatus ASSURED --ctrepldstport 4: ! --ctreplsrcport :80 --ctorigdstport 22 --ctorigsrcport 1:2 --ctrepldst 10.0.0.0/8 ! --ctreplsrc 1.2.3.4 --ctorigdst 5.6.7.0/24 --ctorigsrc 9.9.9.9/32 ! --ctproto tcp --ctstate NEW',
    // (iptables 1.8.9 accepts --ctproto 0, --ctexpire 4:3 and --ctorigsrcport 4:3; the 1.8.11 suite refuses them, checked in conformance-t)
    '-A INPUT -m conntrack --ctproto udp --ctexpire 7 --ctreplsrc 10.0.2.2/24', '-L INPUT', '-L INPUT -n', '-S INPUT',
    '-A INPUT -m connmark --mark 5', '-A INPUT -m connmark ! --mark 0x5/0xff', '-v -A INPUT -m connmark --mark 1/1', '-A INPUT -m connmark --mark -1',
    '-A INPUT -m connmark', '-L INPUT -n', '-S INPUT',
    '-A INPUT -p tcp -m ecn --ecn-tcp-ece --ecn-tcp-cwr --ecn-ip-ect 2', '-A INPUT -p tcp -m ecn ! --ecn-tcp-ece ! --ecn-tcp-cwr ! --ecn-ip-ect 3',
    '-A INPUT -m ecn --ecn-ip-ect 1', '-A INPUT -m ecn --ecn-tcp-cwr', '-A INPUT -m ecn --ecn-ip-ect 4', '-A INPUT -m ecn', '-L INPUT 1 -n',
    '-A OUTPUT -m mac --mac-source 02:00:00:00:01:02', '-N M', '-A M -m mac --mac-source 2:0:0:0:1:2 -j ACCEPT', '-A OUTPUT -j M',
    '-A FORWARD -j M', '-A INPUT -m mac ! --mac-source 42:01:02:03:04:05', '-A INPUT -m mac --mac-source 42-01-02-03-04-05', '-S M', '-L M',
    '-A INPUT -p tcp --syn --tcp-flags SYN SYN', '-A INPUT -p tcp -m multiport --dports 1 --sports 2', '-A INPUT -m comment ! --comment x',
    '-A INPUT -j LOG', '-A INPUT -j LOG --log-level debug --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid --log-macdecode',
    '-A INPUT -j LOG --log-level 07', '-A INPUT -j LOG --log-level warn', '-A INPUT -j LOG --log-level 8', '-A INPUT -j LOG ! --log-uid',
    '-A INPUT -j LOG --log-uid --log-uid', '-A INPUT -j LOG --log-prefix', '-A INPUT -j LOG --log-prefix abcdefghijklmnopqrstuvwxyz0123456789',
    '-A INPUT -j REJECT', '-A INPUT -p tcp -j REJECT --reject-with tcp-rst', '-A INPUT -j REJECT --reject-with tcp-reset',
    '-A INPUT ! -p tcp -j REJECT --reject-with tcp-reset', '-A INPUT -j REJECT --reject-with icmp6-no-route', '-A INPUT -j REJECT --reject-with foo',
    '-A FORWARD -j REJECT --reject-with host-prohib', '-A OUTPUT -j REJECT --reject-with icmp-admin-prohibited --reject-with net-unreach',
    '-v -A INPUT -p udp -j REJECT --reject-with icmp-net-prohibited', '-v -A INPUT -j LOG --log-level 3 --log-tcp-options',
    '-A INPUT -p tcp -m tcpmss --mss 1000:1500 -j DROP', '-A INPUT -p tcp -m tcpmss ! --mss 536', '-A INPUT -p tcp -m tcpmss --mss :1400',
    '-A INPUT -p tcp -m tcpmss --mss 9000:', '-A INPUT -p tcp -m tcpmss --mss 65536', '-A INPUT -p tcp -m tcpmss --mss 9:3',
    '-A INPUT -m tcpmss --mss 5', '-A INPUT -p tcp -m tcpmss', '-v -A INPUT -p tcp -m tcpmss --mss 7',
    '-A OUTPUT -m owner --uid-owner root', '-A OUTPUT -m owner ! --uid-owner 0-10 --gid-owner 5 ! --socket-exists',
    '-A OUTPUT -m owner --socket-exists --gid-owner daemon-7', '-A OUTPUT -m owner --uid-owner nobodyx', '-A OUTPUT -m owner',
    '-A OUTPUT -m owner --uid-owner 5-3', '-A OUTPUT -m owner --uid-owner 4294967295', '-A OUTPUT -m owner --uid-owner 4294967294 --gid-owner tty',
    '-A INPUT -m owner --uid-owner 0', '-N OWN', '-A OWN -m owner --gid-owner 1', '-A INPUT -j OWN', '-A OUTPUT -j OWN', '-S OUTPUT', '-L OUTPUT', '-L OUTPUT -n',
    '-A INPUT -m recent --name SSH --update --seconds 60 --hitcount 4 --rttl --rdest -j DROP', '-A INPUT -m recent --set --name x',
    '-A INPUT -m recent --remove', '-A INPUT -m recent --set --rcheck', '-A INPUT -m recent --rcheck --hitcount 20', '-A INPUT -m recent --set --seconds 5',
    '-A INPUT -m recent', '-A INPUT -m recent ! --update --mask 255.255.0.0 --rsource', '-A INPUT -m recent --set --rttl',
    '-A INPUT -m hashlimit --hashlimit-upto 5/min --hashlimit-name a',
    '-A INPUT -m hashlimit --hashlimit-above 1000000/sec --hashlimit-burst 7 --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name b --hashlimit-htable-expire 2000 --hashlimit-htable-max 100 --hashlimit-htable-size 64 --hashlimit-htable-gcinterval 500',
    '-A INPUT -m hashlimit --hashlimit-upto 3 --hashlimit-name c --hashlimit-mode dstip,srcport,srcip --hashlimit-dstmask 16', '-A INPUT -m hashlimit --hashlimit-name d',
    '-A INPUT -m hashlimit --hashlimit-upto 1/sec', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name e --hashlimit-mode foo',
    '-A INPUT -m hashlimit --hashlimit-upto 1/day --hashlimit-burst 10000 --hashlimit-name e', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name e --hashlimit-srcmask 33',
    '-A INPUT -m hashlimit --hashlimit-upto 60/min --hashlimit-name e', '-A INPUT -m hashlimit --hashlimit-upto 2/hour --hashlimit-name e --hashlimit-htable-expire 10000',
    '-A INPUT -m hashlimit --hashlimit-upto 7/day --hashlimit-name e --hashlimit-htable-expire 86400000', '-A INPUT -m hashlimit --hashlimit-above 3 --hashlimit-name e --hashlimit-htable-expire 1000',
    '-A INPUT -m hashlimit --hashlimit-upto 4kb/s --hashlimit-burst 400kb --hashlimit-name m', '-A INPUT -m hashlimit --hashlimit-upto 10mb/s --hashlimit-name m',
    '-A INPUT -m hashlimit --hashlimit-upto 123456b/s --hashlimit-burst 1mb --hashlimit-name m', '-A INPUT -m hashlimit --hashlimit-upto 96b/s --hashlimit-burst 5 --hashlimit-name m',
    '-A INPUT -m hashlimit --hashlimit-above 1b/s --hashlimit-name m', '-A INPUT -m hashlimit --hashlimit-upto 1000mb/s --hashlimit-name m --hashlimit-htable-expire 15000',
    '-A INPUT -m hashlimit --hashlimit-upto 3000b/s --hashlimit-name m --hashlimit-htable-expire 1000', '-A INPUT -m hashlimit --hashlimit-upto 5kb/s --hashlimit-burst 16kb --hashlimit-name m',
    '-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 4kb --hashlimit-name q', '-A INPUT -m hashlimit --hashlimit-upto 4kb/s --hashlimit-burst 1kb --hashlimit-name m',
    '-A INPUT -m hashlimit --hashlimit-upto 40/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name rate1 --hashlimit-rate-match --hashlimit-rate-interval 10',
    '-A INPUT -m hashlimit --hashlimit-upto 40mb/s --hashlimit-name rate2 --hashlimit-rate-match', '-A INPUT -m hashlimit --hashlimit-upto 40/sec --hashlimit-name rate3 --hashlimit-rate-interval 5',
    '-A INPUT -m hashlimit --hashlimit-upto 40/sec --hashlimit-name rate4 --hashlimit-rate-match --hashlimit-rate-interval 0',
    '-A INPUT -m hashlimit --hashlimit-upto 1/day --hashlimit-burst 10000 --hashlimit-name rate5 --hashlimit-rate-match',
    '-A INPUT -m hashlimit --hashlimit-upto 0/sec --hashlimit-name e', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name e --hashlimit-htable-expire 0',
    '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name e --hashlimit-htable-gcinterval 0', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 0 --hashlimit-name e',
    '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst abc --hashlimit-name e', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 1000000 --hashlimit-name e', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-above 2/sec --hashlimit-name e',
    '-A INPUT -m addrtype --src-type LOCAL,UNICAST ! --dst-type BROADCAST --limit-iface-in', '-A OUTPUT -m addrtype --dst-type local',
    '-A INPUT -m addrtype --src-type FOO', '-A OUTPUT -m addrtype --dst-type LOCAL --limit-iface-in', '-A INPUT -m addrtype',
    '-A FORWARD -m addrtype ! --src-type BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE,UNSPEC,ANYCAST,MULTICAST --limit-iface-out',
    '-A INPUT -m addrtype --dst-type LOCAL --limit-iface-out', '-A FORWARD -m addrtype --dst-type LOCAL --limit-iface-in --limit-iface-out',
    '-A INPUT -m recent --remove --rttl', '-A INPUT -m recent --rttl --update',
    '-S INPUT', '-L INPUT', '-L INPUT -n -v', '-D INPUT -j REJECT', '-C INPUT -j LOG', '-C INPUT -j LOG --log-level 5',
    '-L -n', '-L', '-L -v', '-L -n -v', '-L -n -v -x --line-numbers', '-L -v -x', '-L USR -n', '-L INPUT 2 -n', '-L NOPE', '-L --line-numbers',
  ].map((l) => l.split(' ')),
  ['-A', 'INPUT', '-j', 'LOG', '--log-prefix', 'with "quotes" and \\ '],
  ['-A', 'INPUT', '-j', 'LOG', '--log-prefix', ''],
  ['-A', 'INPUT', '-j', 'LOG', '--log-prefix', 'plain_prefix-1'],
  ['-A', 'INPUT', '-m', 'comment', '--comment', 'ping it', '-p', 'icmp', '--icmp-type', 'echo-request', '-j', 'ACCEPT'],
  ['-L', '-n'], ['-L'],
];

t.test('iptables -L prints what iptables-legacy prints', (t) => compareWithLegacy(t, LISTING, 'L'));

/** ip6tables: commands, errors and listings of every IPv6 match, beside ip6tables-legacy. */
const SEQUENCE6: string[][] = [
  ...[
    '-N X', '-A INPUT -s 2001:db8::/32 -p tcp --dport 22 -j ACCEPT', '-A INPUT -d ::1 -p ipv6-icmp --icmpv6-type echo-request -j DROP',
    '-A INPUT -p icmpv6 -m icmp6 --icmpv6-type 1/3 -j X', '-A X -s 2001:db8::/ffff:ffff:: -m hl --hl-eq 5 -j DROP',
    '-A X -p udp -m length --length 10:20 -m conntrack --ctstate NEW -j ACCEPT', '-A INPUT -i eth0 -p all -j ACCEPT',
    '-A INPUT -m iprange --src-range 2001:db8::1-2001:db8::10 ! --dst-range ::1-::ff -j ACCEPT', '-A INPUT -s ::ffff:1.2.3.4 -j ACCEPT',
    '-A FORWARD -p all -j ACCEPT', '-A OUTPUT ! -d fe80::/10 -o lo -p tcp -m multiport --sports 80,443 -m hl ! --hl-eq 1 -j ACCEPT',
    '-A INPUT -p ipv6-icmp ! --icmpv6-type packet-too-big', '-A INPUT -p ipv6-icmp --icmpv6-type 200', '-A INPUT -m hl --hl-lt 3 -m hl --hl-gt 1',
    '-A INPUT -s ::1,::2 -d fd00::/8,localhost -j RETURN', '-A INPUT -p 44 -j ACCEPT', '-A INPUT -p esp',
    // refused like ip6tables
    '-A INPUT -f -j ACCEPT', '-A INPUT -4 -j ACCEPT', '-A INPUT -s 1.2.3.4 -j ACCEPT', '-A INPUT -s ::/129', '-A INPUT -m icmp --icmp-type 3',
    '-A INPUT -m ttl --ttl-eq 1', '-A INPUT -p ipv6-icmp --icmp-type 3', '-A INPUT -p ipv6-icmp --icmpv6-type foo', '-A OUTPUT -i lo',
    '-A INPUT -m iprange --src-range 1.2.3.4-1.2.3.5', '-C INPUT -p tcp', '-D INPUT 99', '-t bogus -S',
    '-S', '-S X', '-L -n', '-L', '-L -v -n --line-numbers', '-L -v -x', '-L X', '-C INPUT -s 2001:db8::/32 -p tcp --dport 22 -j ACCEPT',
    '-D INPUT -s 2001:db8::/32 -p tcp --dport 22 -j ACCEPT', '-D INPUT 2', '-R INPUT 1 -d 2001:db8::1 -j DROP', '-E X Y', '-S', '-F', '-X', '-S',
    '-v -A INPUT ! -s 2001:db8::/32 -d ::1,fe80::1 -p ipv6-icmp --icmpv6-type 1/3 -m hl --hl-lt 3 -j ACCEPT', '-v -A OUTPUT -p tcp ! --dport 22 -o lo',
    '-v -F', '-v -A INPUT -p all -m iprange ! --dst-range ::1-::2',
    '-A INPUT -j REJECT', '-A INPUT -j REJECT --reject-with icmp6-adm-prohibited', '-A INPUT -j REJECT --reject-with addr-unreach',
    '-A INPUT -p tcp -j REJECT --reject-with tcp-reset', '-A INPUT -j REJECT --reject-with icmp-port-unreachable',
    '-A INPUT -j REJECT --reject-with policy-fail', '-A INPUT -j REJECT --reject-with icmp6-reject-route', '-A INPUT -j REJECT --reject-with no-route',
    '-A INPUT -j LOG --log-prefix x --log-level alert --log-ip-options', '-A INPUT -p tcp -m tcpmss --mss 1220:1440',
    '-A INPUT -m addrtype --src-type LOCAL,UNICAST ! --dst-type MULTICAST --limit-iface-in', '-A OUTPUT -m addrtype --dst-type anycast,unreachable,unspec',
    '-A INPUT -m addrtype --dst-type BROADCAST', '-A INPUT -m addrtype --dst-type BLACKHOLE', '-A INPUT -m addrtype --src-type PROHIBIT',
    '-A INPUT -m addrtype --src-type LOCAL --dst-type THROW', '-A INPUT -m addrtype --dst-type XRESOLVE', '-A OUTPUT -m addrtype --dst-type LOCAL --limit-iface-in',
    '-S', '-L -n -v',
  ].map((l) => l.split(' ')),
  ['-A', 'INPUT', '-m', 'comment', '--comment', 'ping it', '-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request', '-j', 'ACCEPT'],
  ['-L', '-n'], ['-S'],
];

t.test('ip6tables commands and listings behave like ip6tables-legacy', (t) => compareWithLegacy(t, SEQUENCE6, 'S', 'ip6tables'));

t.test('a rule added with iptables -A is enforced at once', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const topo = new Topology('A');
  t.teardown(() => topo.destroy());
  const delivered = (dport: number): boolean => {
    const rcv = new RawReceiver(topo.router, 6);
    try {
      const p = tcpPacket('10.0.1.2', '10.0.1.1', { sport: 4000, dport, flags: TCP.SYN });
      sendRaw(topo.client, p);
      sleep(200);
      return rcv.drain().some((b) => b.readUInt16BE(20) === 4000 && b.readUInt16BE(22) === dport);
    } finally { rcv.close(); }
  };
  t.ok(delivered(23), 'port 23 open before');
  t.equal(nsExec(topo.router, path.join(BIN, 'iptables'), ['-A', 'INPUT', '-p', 'tcp', '--dport', '23', '-j', 'DROP']).status, 0);
  t.notOk(delivered(23), 'dropped after -A');
  t.ok(delivered(24), 'other ports unaffected');
  t.equal(nsExec(topo.router, path.join(BIN, 'iptables'), ['-D', 'INPUT', '1']).status, 0);
  t.ok(delivered(23), 'open again after -D');
});

t.test('-h prints iptables\' help text', async (t) => {
  if (!requireKernel(t, ['iptables-legacy', 'ip6tables-legacy'])) return;
  for (const cmd of ['iptables', 'ip6tables']) {
    const ours = spawnSync(path.join(BIN, cmd), ['-h'], { encoding: 'utf8' });
    const legacy = spawnSync(`${cmd}-legacy`, ['-h'], { encoding: 'utf8' });
    t.equal(ours.status, 0);
    t.equal(ours.stdout.replace('v1.8.11 (bpftables)', 'VER'), legacy.stdout.replace('v1.8.9 (legacy)', 'VER'), `${cmd} -h`);
  }
});
