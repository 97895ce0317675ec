/**
 * iptables-translate: byte for byte what iptables' own translator prints,
 * for every entry of its .txlate files bpftables can translate, and the
 * untranslated `nft # ...` form (never a wrong translation) for the rest.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { systemNameDb } from '../compat/namedb';
import { splitArgs } from '../grammar/restore-lexer';
import { translateCommand } from '../xlate/translate';
import { txlateEntries } from '../conformance/txlate';
import { BIN, requireTools, sharedDir } from './helpers/env';

const db = { ...systemNameDb, ipset: () => undefined, resolveHost: () => [], resolveHost6: () => [] };
const tr = (line: string, family: 4 | 6 = 4): string => translateCommand(splitArgs(line).map((a) => a.text), family, db);

t.test('core options and common matches', async (t) => {
  t.equal(tr('-I OUTPUT -p udp -d 8.8.8.8 -j ACCEPT'), "nft 'insert rule ip filter OUTPUT ip protocol udp ip daddr 8.8.8.8 counter accept'\n");
  t.equal(tr('-A INPUT -i iif+ ! -d 10.0.0.0/8'), "nft 'add rule ip filter INPUT iifname \"iif*\" ip daddr != 10.0.0.0/8 counter'\n");
  t.equal(tr('-I INPUT -s 10.11.12.13/255.0.255.0'), "nft 'insert rule ip filter INPUT ip saddr & 255.0.255.0 == 10.0.12.0 counter'\n");
  t.equal(tr('-A FORWARD ! -p 132', 6), "nft 'add rule ip6 filter FORWARD meta l4proto != sctp counter'\n");
  t.equal(tr('-A INPUT -p tcp --syn --dport 80 -j ACCEPT'), "nft 'add rule ip filter INPUT tcp dport 80 tcp flags syn / fin,syn,rst,ack counter accept'\n");
  t.equal(tr('-A INPUT -m conntrack --ctstate NEW,RELATED -j ACCEPT'), "nft 'add rule ip filter INPUT ct state new,related counter accept'\n");
  t.equal(tr('-A INPUT -m state --state ESTABLISHED,RELATED,INVALID -j ACCEPT'), "nft 'add rule ip filter INPUT ct state invalid,related,established counter accept'\n", 'states in iptables\' order, not as given');
  t.equal(tr('-A INPUT -p tcp -m tcp --sport http -s 192.168.0.0/16 -j X -m comment --comment foo'), "nft 'add rule ip filter INPUT ip saddr 192.168.0.0/16 tcp sport 80 counter jump X comment \"foo\"'\n");
  t.equal(tr('-A INPUT -m limit --limit 3/m --limit-burst 3'), "nft 'add rule ip filter INPUT limit rate 3/minute burst 3 packets counter'\n");
  t.equal(tr('-A INPUT -s 10.0.0.1,10.0.0.2 -j DROP'), "nft 'add rule ip filter INPUT ip saddr 10.0.0.1 counter drop'\nnft 'add rule ip filter INPUT ip saddr 10.0.0.2 counter drop'\n", 'one rule per address, as iptables makes them');
  t.equal(tr('-A OUTPUT -m owner --socket-exists -j DROP'), 'nft # -A OUTPUT -m owner --socket-exists -j DROP\n', 'what has no translation here is left untranslated');
  t.equal(tr('-A INPUT -m nosuchmatch'), 'nft # -A INPUT -m nosuchmatch\n', 'and so is what the parser refuses');
  t.equal(tr('-A INPUT -p icmp -m length --length 86:0xffff -j DROP'), "nft 'add rule ip filter INPUT ip protocol icmp meta length 86-65535 counter drop'\n", 'numbers as iptables reads them: hex');
  t.equal(tr('-A INPUT -m ttl --ttl-eq 010'), "nft 'add rule ip filter INPUT ip ttl 8 counter'\n", 'octal');
  t.equal(tr('-A INPUT -m ttl --ttl-eq 08'), 'nft # -A INPUT -m ttl --ttl-eq 08\n', 'and not 08, which iptables refuses');
  t.equal(tr('-A INPUT -j NFLOG'), 'nft # -A INPUT -j NFLOG\n', 'a target extension is not a jump to a chain of its name');
});

/**
 * addrtype, ecn, owner, pkttype, mac, statistic and tcpmss: what iptables-translate prints (Debian's 1.8.9
 * printed each of these the same), and where it prints a rule that filters otherwise, ours (DIFFERENT).
 */
const MORE: [family: 4 | 6, rule: string, nft: string][] = [
  [4, '-A INPUT -m addrtype --src-type LOCAL', 'fib saddr type local counter'],
  [4, '-A INPUT -m addrtype ! --dst-type UNICAST,BROADCAST,MULTICAST', 'fib daddr type != { unicast, broadcast, multicast } counter'],
  [4, '-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j DROP', 'fib daddr . iif type local counter drop'],
  [4, '-A OUTPUT -m addrtype --src-type BLACKHOLE,UNREACHABLE,PROHIBIT,UNSPEC,ANYCAST --limit-iface-out', 'fib saddr . oif type { unspec, anycast, blackhole, unreachable, prohibit } counter'],
  [4, '-A INPUT -p tcp -m ecn --ecn-tcp-ece --ecn-tcp-cwr --ecn-ip-ect 1', 'ip protocol tcp tcp flags ecn tcp flags cwr ip ecn ect1 counter'],
  [4, '-A INPUT -m ecn ! --ecn-ip-ect 3', 'ip ecn != ce counter'],
  [4, '-A OUTPUT -m owner --uid-owner 0 -j ACCEPT', 'skuid 0 counter accept'],
  [4, '-A OUTPUT -m owner --gid-owner 100-200 -j DROP', 'skgid 100-200 counter drop'],
  [4, '-A INPUT -m pkttype --pkt-type host -j DROP', 'pkttype unicast counter drop'],
  [4, '-A INPUT -m pkttype ! --pkt-type broadcast -j DROP', 'pkttype != broadcast counter drop'],
  [4, '-A INPUT -m pkttype --pkt-type otherhost -j DROP', 'pkttype 3 counter drop'],
  [4, '-A FORWARD -m mac --mac-source 0A:00:27:00:00:01 -j DROP', 'ether saddr 0a:00:27:00:00:01 counter drop'],
  [4, '-A INPUT -m mac ! --mac-source 02:00:00:00:00:02', 'ether saddr != 02:00:00:00:00:02 counter'],
  [4, '-A OUTPUT -m statistic --mode random --probability 0.25 -j DROP', 'meta random & 2147483647 < 536870912 counter drop'],
  [4, '-A OUTPUT -m statistic --mode random ! --probability 0.5', 'meta random & 2147483647 >= 1073741824 counter'],
  [4, '-A OUTPUT -m statistic --mode nth --every 3 --packet 0 -j DROP', 'numgen inc mod 3 0 counter drop'],
  [4, '-A OUTPUT -m statistic --mode nth ! --every 4 --packet 2', 'numgen inc mod 4 != 2 counter'],
  [4, '-A INPUT -p tcp -m tcpmss --mss 1000:1500 -j DROP', 'ip protocol tcp tcp option maxseg size 1000-1500 counter drop'],
  [6, '-A INPUT -m pkttype --pkt-type multicast -j ACCEPT', 'pkttype multicast counter accept'],
  [6, '-A INPUT -m mac --mac-source 0a:12:3e:4f:b2:c6 -j DROP', 'ether saddr 0a:12:3e:4f:b2:c6 counter drop'],
  [6, '-A OUTPUT -m owner --uid-owner 33 -j ACCEPT', 'skuid 33 counter accept'],
  [6, '-A INPUT -p tcp -m tcpmss --mss 1220 -j ACCEPT', 'meta l4proto tcp tcp option maxseg size 1220 counter accept'],
];
/** Where iptables-translate's rule filters otherwise, ours, and why (null: left untranslated). */
const DIFFERENT: [family: 4 | 6, rule: string, nft: string | null, why: string][] = [
  [4, '-A INPUT -p tcp -m tcp --dport 22 -m ecn ! --ecn-tcp-cwr ! --ecn-ip-ect 0 -j ACCEPT', 'tcp dport 22 tcp flags ! cwr ip ecn != not-ect counter accept', "iptables' tcp flags != cwr compares the whole flags byte with CWR alone"],
  [4, '-A INPUT -m addrtype --src-type LOCAL ! --dst-type LOCAL', 'fib saddr type local fib daddr type != local counter', 'iptables prints one side only (with the other\'s negation)'],
  [4, '-A INPUT -m addrtype --src-type LOCAL,THROW', 'fib saddr type { local, 9 } counter', 'nft has no name for THROW, NAT or XRESOLVE but reads their numbers (iptables leaves them out of the set)'],
  [4, '-A INPUT -m addrtype ! --dst-type XRESOLVE -j DROP', 'fib daddr type != 11 counter drop', 'iptables prints `fib daddr type` with no type'],
  [6, '-A INPUT -m ecn --ecn-ip-ect 1', 'ip6 ecn ect1 counter', "iptables says ip ecn, which no IPv6 packet matches"],
  [6, '-A INPUT -m addrtype --src-type LOCAL', null, "nft's IPv6 fib asks another question than ip6tables' addrtype"],
  [4, '-A OUTPUT -m owner ! --uid-owner 1000 -j DROP', null, 'a packet without a socket matches the negation in iptables, none matches skuid != in nft'],
  [4, '-A INPUT -p tcp -m tcp --syn -m tcpmss ! --mss 536 -j DROP', null, 'a packet without the MSS option matches the negation in iptables, none matches nft\'s'],
  [4, '-A INPUT -m limit --limit 1/s -p tcp --dport 22 -j ACCEPT', 'ip protocol tcp limit rate 1/second burst 5 packets tcp dport 22 counter accept', "iptables tests the protocol before the limit; iptables' nft rule lets other packets take tokens"],
];
const addRule = (family: 4 | 6, rule: string, nft: string): string => `nft 'add rule ${family === 6 ? 'ip6' : 'ip'} filter ${rule.split(' ')[1]} ${nft}'\n`;

t.test('addrtype, ecn, owner, pkttype, mac, statistic and tcpmss', async (t) => {
  for (const [family, rule, nft] of MORE) t.equal(tr(rule, family), addRule(family, rule, nft), `${family === 6 ? 'ip6' : 'ip'}tables ${rule}`);
  for (const [family, rule, nft, why] of DIFFERENT) t.equal(tr(rule, family), nft === null ? `nft # ${rule}\n` : addRule(family, rule, nft), `${rule}: ${why}`);
});

t.test("beside Debian's iptables-translate: the same, but where its rule filters otherwise", async (t) => {
  if (!requireTools(t, ['iptables-translate', 'ip6tables-translate'], "Debian's iptables")) return;
  for (const [family, rule] of [...MORE, ...DIFFERENT]) {
    const real = spawnSync(family === 6 ? 'ip6tables-translate' : 'iptables-translate', splitArgs(rule).map((a) => a.text), { encoding: 'utf8' }).stdout;
    const different = DIFFERENT.find((d) => d[0] === family && d[1] === rule);
    if (different) t.not(tr(rule, family), real, `${rule}: not iptables' (${different[3]})`);
    else t.equal(tr(rule, family), real, rule);
  }
});

const dir = sharedDir('iptables/extensions');
t.test("iptables' .txlate files", { skip: dir ? false : 'conformance data (../shared) not present' }, async (t) => {
  if (!dir) return;
  let pass = 0, untranslated = 0;
  const wrong: string[] = [];
  for (const e of txlateEntries(dir)) {
    const got = translateCommand(e.args, e.family, db);
    if (got === e.want) pass++;
    else if (got.startsWith('nft # ')) untranslated++;
    else wrong.push(`${e.file}: ${e.command}\n  want ${e.want}  got  ${got}`);
  }
  t.same(wrong, [], `no translation differs from iptables' (${pass} identical, ${untranslated} left untranslated)`);
  t.ok(pass >= 137, 'the supported extensions translate');
});

/**
 * iptables-restore-translate beside the one Debian's iptables ships, on our
 * fixtures and iptables' dumps: the same tables and chains, every rule we
 * translate translated alike, the rest printed in iptables' untranslated form,
 * header and footer alike (the footer without a newline, as iptables').
 */
t.test('iptables-restore-translate translates like the one iptables ships', async (t) => {
  if (!requireTools(t, ['iptables-restore-translate', 'ip6tables-restore-translate'], "Debian's iptables")) return;
  const fixtures = path.join(__dirname, '..', '..', 'fixtures');
  const files: [string, 4 | 6][] = [[path.join(fixtures, 'demo.rules'), 4], [path.join(fixtures, 'canonical.rules'), 4], [path.join(fixtures, 'ipv6.rules'), 6]];
  const dumps = sharedDir('iptables/dumps');
  if (dumps) for (const f of fs.readdirSync(dumps)) files.push([path.join(dumps, f), /ip6tables|ipv6/.test(f) ? 6 : 4]);
  let same = 0, ours = 0, compared = 0, versions = 0;
  for (const [file, family] of files) {
    const prog = `${family === 6 ? 'ip6' : 'ip'}tables-restore-translate`;
    const real = spawnSync(prog, ['-f', file], { encoding: 'utf8' });
    if (real.status !== 0) continue;
    const mine = spawnSync(path.join(BIN, prog), ['-f', file], { encoding: 'utf8' });
    t.equal(mine.status, 0, `${path.basename(file)}: exit 0`);
    const a = mine.stdout.split('\n'), b = real.stdout.split('\n');
    t.match(a[0], /^# Translated by ip6?tables-restore-translate v\S+ \(bpftables\) on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/, `${path.basename(file)}: the header`);
    t.match(a[a.length - 2], /^# Completed on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/, 'the footer');
    t.equal(a.length, b.length, `${path.basename(file)}: as many lines as iptables'`);
    compared++;
    for (let i = 1; i < Math.min(a.length, b.length) - 2; i++) {
      if (a[i] === b[i]) { same++; continue; }
      if (a[i]!.startsWith('# -t ')) { ours++; continue; }
      // iptables 1.8.10 and later (whose tests we follow) say `meta l4proto` for a tcp/udp match without ports;
      // Debian's 1.8.9 leaves it out
      if (a[i]!.replace(/meta l4proto (tcp|udp) (?=(tcp|udp) )/, '') === b[i]) { versions++; continue; }
      t.fail(`${path.basename(file)} line ${i + 1}: ours ${a[i]}, iptables' ${b[i]}`);
    }
  }
  t.ok(compared >= 3, `${compared} files: ${same} lines identical, ${ours} rules left untranslated where iptables translates them, ${versions} as iptables 1.8.10+ prints them`);
});
