/**
 * `iptables -L` output, in iptables' exact layout: chain headers, the column
 * header, one line per rule with the matches printed the way each iptables
 * extension prints them, with or without -n (names from the NameDb), -v
 * (counters, interfaces), -x (exact counters) and --line-numbers.
 */
import { readOnce } from './packed';
import { BpftablesError } from './errors';
import { fmtIpv4, fmtIpv6, isZero6, maskBits6 } from './addr';
import type { TableCommand } from './commands';
import { type AddrMatch, type Chain, commandName, type Family, isBuiltin, type IfaceMatch, isAddr6, type Match, type Range, type Rule, type Table, TCP_FLAGS } from './ir';
import { fmtAddrTypes, fmtCtAddr, fmtCtStatus, fmtIpRange, fmtMac, fmtRate, hashlimitDefaultExpire, hashlimitMasks, hashlimitRateText, PKT_TYPES, recentMaskText, TOS_NAMES } from './matches';
import { BUILTIN_PROTOS, ICMP_TYPES, ICMP6_TYPES, type NameDb, protoName } from './names';
import { chainOrder, maskBits } from './save';
import { targetModuleOf } from './targets';

export interface ListOptions { numeric: boolean; verbose: boolean; exact: boolean; lineNumbers: boolean; db: NameDb }
type RowOptions = ListOptions & { family: Family };

const pad = (s: string, w: number): string => (s.length >= w ? s : s + ' '.repeat(w - s.length));
const padL = (s: string, w: number): string => (s.length >= w ? s : ' '.repeat(w - s.length) + s);

/** iptables' counter column (xtables_print_num). `notable`: inside a sentence, no padding. */
export function fmtNum(n: number, exact: boolean, notable = false): string {
  if (exact) return notable ? `${n} ` : `${padL(String(n), 8)} `;
  if (n <= 99999) return notable ? `${n} ` : `${padL(String(n), 5)} `;
  for (const unit of ['K', 'M', 'G']) {
    n = Math.floor((n + 500) / 1000);
    if (n <= 9999) return notable ? `${n}${unit} ` : `${padL(String(n), 4)}${unit} `;
  }
  n = Math.floor((n + 500) / 1000);
  return notable ? `${n}T ` : `${padL(String(n), 4)}T `;
}

/** An address as the listings show it: name or address, /bits or /mask unless a single host. */
function addrText(a: AddrMatch | undefined, o: RowOptions): string {
  const any = o.numeric ? (o.family === 6 ? '::/0' : '0.0.0.0/0') : 'anywhere';
  if (a && isAddr6(a)) {
    if (isZero6(a.mask6)) return any;
    const bits = maskBits6(a.mask6);
    let host = fmtIpv6(a.addr6);
    if (!o.numeric && bits === 128) host = o.db.hostByAddr6?.(a.addr6) ?? host;
    return host + (bits === 128 ? '' : `/${bits ?? fmtIpv6(a.mask6)}`);
  }
  if (!a || a.mask === 0) return any;
  let host = fmtIpv4(a.addr);
  if (!o.numeric && a.mask === 0xffffffff) host = o.db.hostByAddr?.(a.addr) ?? host;
  const bits = maskBits(a.mask);
  return host + (bits === 32 ? '' : bits === undefined ? `/${fmtIpv4(a.mask)}` : `/${bits}`);
}

function fmtAddr(a: AddrMatch | undefined, o: RowOptions): string {
  return `${a?.invert ? '!' : ' '}${pad(addrText(a, o), 19)} `;
}

function fmtIface(i: IfaceMatch | undefined, o: ListOptions): string {
  let s = i?.invert ? '!' : '';
  if (i && (i.name || i.wildcard)) s += i.name + (i.wildcard ? '+' : '');
  else s += o.numeric ? '*' : 'any';
  return s;
}

const PORT_PROTO: Record<string, string> = { tcp: 'tcp', udp: 'udp' };

function portName(p: number, proto: string, o: ListOptions): string {
  return o.numeric ? String(p) : o.db.serviceByPort?.(p, proto) ?? String(p);
}

function fmtPorts(name: string, r: Range | undefined, invert: boolean, proto: string, o: ListOptions): string {
  if (!r || (r[0] === 0 && r[1] === 65535 && !invert)) return '';
  const inv = invert ? '!' : '';
  if (r[0] === r[1]) return ` ${name}:${inv}${portName(r[0], proto, o)}`;
  return ` ${name}s:${inv}${portName(r[0], proto, o)}:${portName(r[1], proto, o)}`;
}

function tcpFlagNames(v: number): string {
  if (v === 0) return 'NONE';
  return Object.entries(TCP_FLAGS).filter(([, b]) => v & b).map(([n]) => n).join(',');
}
const hex2 = (v: number): string => `0x${v.toString(16).toUpperCase().padStart(2, '0')}`;
const hexl = (v: number): string => `0x${v.toString(16).padStart(2, '0')}`;

function fmtMatch(m: Match, proto: number | undefined, o: ListOptions): string {
  switch (m.kind) {
    case 'tcp': case 'udp': {
      const pn = PORT_PROTO[m.kind]!;
      let s = ` ${m.kind}`;
      s += fmtPorts('spt', m.sport?.range, m.sport?.invert ?? false, pn, o);
      s += fmtPorts('dpt', m.dport?.range, m.dport?.invert ?? false, pn, o);
      if (m.kind === 'tcp' && m.flags && (m.flags.mask || m.flags.invert)) {
        s += ` flags:${m.flags.invert ? '!' : ''}`;
        s += o.numeric ? `${hex2(m.flags.mask)}/${hex2(m.flags.comp)}` : `${tcpFlagNames(m.flags.mask)}/${tcpFlagNames(m.flags.comp)}`;
      }
      return s;
    }
    case 'icmp': {
      if (!o.numeric) {
        const named = ICMP_TYPES.find(([, t, lo, hi]) => t === m.type && lo === m.codeMin && hi === m.codeMax);
        if (named) return ` icmp ${m.invert ? '!' : ''}${named[0]}`;
      }
      let s = ` icmp${m.invert ? ' !' : ''}type ${m.type}`;
      if (m.codeMin === m.codeMax) s += ` code ${m.codeMin}`;
      else if (m.codeMin !== 0 || m.codeMax !== 0xff) s += ` codes ${m.codeMin}-${m.codeMax}`;
      return s;
    }
    case 'multiport': {
      const pn = proto === 17 ? 'udp' : 'tcp';
      const list = m.ports.map(([lo, hi]) => (lo === hi ? portName(lo, pn, o) : `${portName(lo, pn, o)}:${portName(hi, pn, o)}`)).join(',');
      return ` multiport ${m.dir === 'src' ? 'sports' : m.dir === 'dst' ? 'dports' : 'ports'} ${m.invert ? ' !' : ''}${list}`;
    }
    case 'comment': return ` /* ${m.text} */`;
    case 'conntrack': {
      let s = m.ctstate.length ? `${m.invert ? ' !' : ''} ctstate ${m.ctstate.join(',')}` : '';
      if (m.proto) s += `${m.proto.invert ? ' !' : ''} ctproto ${m.proto.num}`;
      for (const k of ['origsrc', 'origdst', 'replsrc', 'repldst'] as const) {
        const a = m[k];
        if (a) s += `${a.invert ? ' !' : ''} ct${k} ${fmtCtAddr(a)}`;
      }
      for (const k of ['origsrcport', 'origdstport', 'replsrcport', 'repldstport'] as const) {
        const p = m[k];
        if (p) s += `${p.invert ? ' !' : ''} ct${k} ${p.range[0] === p.range[1] ? p.range[0] : `${p.range[0]}:${p.range[1]}`}`;
      }
      if (m.status) s += `${m.status.invert ? ' !' : ''} ctstatus ${fmtCtStatus(m.status.mask)}`;
      if (m.expire) s += `${m.expire.invert ? ' !' : ''} ctexpire ${m.expire.min === m.expire.max ? m.expire.min : `${m.expire.min}:${m.expire.max}`}`;
      if (m.dir) s += ` ctdir ${m.dir}`;
      return s;
    }
    case 'state': return `${m.invert ? ' !' : ''} state ${m.states.join(',')}`;
    case 'iprange': {
      let s = '';
      if (m.src) s += ` source IP range${m.src.invert ? ' !' : ''} ${fmtIpRange(m.src)}`;
      if (m.dst) s += ` destination IP range${m.dst.invert ? ' !' : ''} ${fmtIpRange(m.dst)}`;
      return s;
    }
    case 'icmp6': {
      if (!o.numeric) {
        const named = ICMP6_TYPES.find(([, t, lo, hi]) => t === m.type && lo === m.codeMin && hi === m.codeMax);
        if (named) return ` ipv6-icmp ${m.invert ? '!' : ''}${named[0]}`;
      }
      let s = ` ipv6-icmp${m.invert ? ' !' : ''}type ${m.type}`;
      if (m.codeMin === m.codeMax) s += ` code ${m.codeMin}`;
      else if (m.codeMin !== 0 || m.codeMax !== 0xff) s += ` codes ${m.codeMin}-${m.codeMax}`;
      return s;
    }
    case 'hl': return ` HL match HL ${m.op === 'eq' ? (m.invert ? '!=' : '==') : m.op === 'lt' ? '<' : '>'} ${m.value}`;
    case 'ecn': {
      let s = ' ECN match';
      if (m.ece) s += ` ${m.ece.invert ? '!' : ''}ECE`;
      if (m.cwr) s += ` ${m.cwr.invert ? '!' : ''}CWR`;
      if (m.ect) s += ` ${m.ect.invert ? '!' : ''}ECT=${m.ect.value}`;
      return s;
    }
    case 'mac': return ` MAC ${m.invert ? '! ' : ''}${fmtMac(m.addr)}`;
    case 'connmark': return ` connmark match ${m.invert ? '!' : ''} 0x${m.value.toString(16)}${m.mask === 0xffffffff ? '' : `/0x${m.mask.toString(16)}`}`;
    case 'mark': return ` mark match ${m.invert ? '! ' : ''}0x${m.value.toString(16)}${m.mask === 0xffffffff ? '' : `/0x${m.mask.toString(16)}`}`;
    case 'pkttype': return ` PKTTYPE ${m.invert ? '!=' : '='} ${PKT_TYPES.find(([, v]) => v === m.type)![0]}`;
    // nft's meta iif/oif and ip6 nexthdr have no iptables match: listed as nft writes them
    case 'ifindex': return ` ${m.dir === 'in' ? 'iif' : 'oif'} ${m.invert ? '!= ' : ''}${m.indexes.join(',')}`;
    case 'payload': return ` payload ${m.base}+${m.offset}/${m.size}${m.shift ? `>>${m.shift}` : ''}&0x${m.mask.toString(16)} ${m.invert ? '!= ' : ''}${m.ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(',')}`;
    case 'nexthdr': return ` ip6 nexthdr ${m.invert ? '!= ' : ''}${m.ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(',')}`;
    case 'dscp': return ` DSCP match ${m.invert ? '!' : ''}${hexl(m.value)}`;
    case 'tos': {
      const named = !o.numeric && m.mask === 0x3f ? TOS_NAMES.find(([, v]) => v === m.value) : undefined;
      return ` tos match${m.invert ? '!' : ''}${named ? ` ${named[0]}` : `${hexl(m.value)}/${hexl(m.mask)}`}`;
    }
    // (nft's fib: no iptables listing has it; said as nft says it)
    case 'fibroute': return ` fib ${m.addr}${m.dev ? ` . ${m.dev}` : ''} ${m.names ? 'oifname' : 'oif'} ${m.invert ? '!= ' : ''}${(m.names?.map((n) => n.name + (n.wildcard ? '*' : '')) ?? m.indexes!.map(String)).join(',')}`;
    case 'addrtype': {
      let s = ' ADDRTYPE match';
      if (m.src) s += ` src-type ${m.src.invert ? '!' : ''}${fmtAddrTypes(m.src.types)}`;
      if (m.dst) s += ` dst-type ${m.dst.invert ? '!' : ''}${fmtAddrTypes(m.dst.types)}`;
      if (m.limitIn) s += ' limit-in';
      if (m.limitOut) s += ' limit-out';
      return s;
    }
    case 'hashlimit': {
      let s = ` limit: ${m.above ? 'above' : 'up to'} ${hashlimitRateText(m, '', true)}`;
      if (m.mode.length) s += ` mode ${m.mode.join('-')}`;
      if (m.size !== undefined) s += ` htable-size ${m.size}`;
      if (m.max !== undefined) s += ` htable-max ${m.max}`;
      if (m.gcinterval !== 1000) s += ` htable-gcinterval ${m.gcinterval}`;
      // (against the rate as listed: per rate-interval)
      if (m.expire !== hashlimitDefaultExpire(m.avg * (m.interval ?? 1), m.bytes)) s += ` htable-expire ${m.expire}`;
      s += hashlimitMasks(m, ' ');
      if (m.rateMatch) s += ` rate-match${m.interval ? ` rate-interval ${m.interval}` : ''}`;
      return s;
    }
    case 'recent': {
      let s = ` ${m.invert ? '! ' : ''}recent: ${({ set: 'SET', rcheck: 'CHECK', update: 'UPDATE', remove: 'REMOVE' } as const)[m.cmd]}`;
      if (m.seconds) s += ` seconds: ${m.seconds}`;
      if (m.hitcount) s += ` hit_count: ${m.hitcount}`;
      if (m.rttl) s += ' TTL-Match';
      return `${s} name: ${m.name} side: ${m.side} mask: ${recentMaskText(m.mask)}`;
    }
    case 'set': return ` ${m.invert ? '! ' : ''}match-set ${m.name} ${m.dirs.join(',')}`;
    case 'nftset': return ` ${m.side === 'src' ? 'saddr' : 'daddr'} ${m.invert ? '!= ' : ''}@${m.name}`;
    case 'owner': {
      const range = (r: { min: number; max: number }, name?: (id: number) => string | undefined): string =>
        (r.min === r.max ? (!o.numeric && name?.(r.min)) || `${r.min}` : `${r.min}-${r.max}`);
      let s = '';
      if (m.socketExists) s += ` ${m.socketExists.invert ? '! ' : ''}owner socket exists`;
      if (m.uid) s += ` ${m.uid.invert ? '! ' : ''}owner UID match ${range(m.uid, o.db.userName)}`;
      if (m.gid) s += ` ${m.gid.invert ? '! ' : ''}owner GID match ${range(m.gid, o.db.groupName)}`;
      return s;
    }
    case 'tcpmss': return ` tcpmss match ${m.invert ? '!' : ''}${m.min === m.max ? m.min : `${m.min}:${m.max}`}`;
    case 'limit': return ` limit: avg ${fmtRate(m.avg)} burst ${m.burst}`;
    // (nft's quota: no iptables listing has it; said as nft says it)
    case 'quota': return ` quota ${m.over ? 'over ' : ''}${m.bytes} bytes`;
    case 'statistic':
      if (m.mode === 'random') return ` statistic mode random${m.invert ? ' !' : ''} probability ${(m.probability / 0x80000000).toFixed(11)}`;
      return ` statistic mode nth${m.invert ? ' !' : ''} every ${m.every + 1}${m.packet ? ` packet ${m.packet}` : ''}`;
    case 'length': return ` length ${m.invert ? '!' : ''}${m.min === m.max ? m.min : `${m.min}:${m.max}`}`;
    case 'ttl': return ` TTL match TTL ${m.op === 'eq' ? (m.invert ? '!=' : '==') : m.op === 'lt' ? '<' : '>'} ${m.value}`;
  }
}

function targetName(r: Rule): string {
  const v = r.verdict;
  switch (v.kind) {
    case 'accept': return 'ACCEPT';
    case 'drop': return 'DROP';
    case 'return': return 'RETURN';
    case 'jump': case 'goto': return v.chain;
    case 'none': return '';
    case 'log': return 'LOG';
    case 'reject': return 'REJECT';
  }
}

/** A target extension's own text, after the matches' (with its separating space). */
function targetText(r: Rule, numeric: boolean): string {
  const t = targetModuleOf(r.verdict);
  return t ? ` ${t.list(r.verdict as Parameters<typeof t.list>[0], numeric)}` : '';
}

function ruleLine(rule: Rule, num: number, o: RowOptions): string {
  const r = readOnce(rule);
  let s = '';
  if (o.lineNumbers) s += `${pad(String(num), 4)} `;
  if (o.verbose) s += fmtNum(r.counters.packets, o.exact) + fmtNum(r.counters.bytes, o.exact);
  s += `${pad(targetName(r), 9)} `;
  s += r.ip.proto?.invert ? '!' : ' ';
  // iptables prints "%-4s " here, so names of five or more characters push the line right
  const proto = r.ip.proto?.num ?? 0;
  s += `${pad(o.numeric ? String(proto) : proto === 0 ? 'all' : protoName(proto, o.db), 4)} `;
  s += `${r.ip.frag?.invert ? '!' : '-'}${r.ip.frag ? 'f' : '-'} `;
  if (o.verbose) s += ` ${pad(fmtIface(r.ip.in, o), 6)} ${pad(fmtIface(r.ip.out, o), 6)} `;
  s += fmtAddr(r.ip.src, o) + fmtAddr(r.ip.dst, o);
  if (r.verdict.kind === 'goto') s += '[goto] ';
  for (const m of r.matches) s += fmtMatch(m, r.ip.proto?.num, o);
  return s + targetText(r, o.numeric);
}

/**
 * The line `iptables -v` prints for each rule a command adds, inserts,
 * replaces, checks or deletes (numeric, no table layout).
 */
export function verboseRuleLine(rule: Rule, family: Family, db: NameDb): string {
  const r = readOnce(rule);
  const o: RowOptions = { numeric: true, verbose: true, exact: false, lineNumbers: false, db, family };
  const proto = r.ip.proto?.num ?? 0;
  let s = `${targetName(r)} ${r.ip.proto?.invert ? '!' : ' '}`;
  s += `${proto === 0 ? 'all' : BUILTIN_PROTOS.find(([, n]) => n === proto)?.[0] ?? String(proto)} `;
  s += `opt ${r.ip.frag?.invert ? '!' : '-'}${r.ip.frag ? 'f' : '-'} `;
  s += `in ${fmtIface(r.ip.in, o)} out ${fmtIface(r.ip.out, o)} `;
  s += `${r.ip.src?.invert ? '!' : ' '}${addrText(r.ip.src, o)} ${r.ip.dst?.invert ? '!' : ' '}-> ${addrText(r.ip.dst, o)}  `;
  if (r.verdict.kind === 'goto') s += '[goto] ';
  for (const m of r.matches) s += fmtMatch(m, r.ip.proto?.num, o);
  return `${s}${targetText(r, true)}\n`;
}

/** What `iptables -v` says about a change before making it. */
export function verboseReport(t: Table, cmd: TableCommand, db: NameDb): string {
  const each = (verb: string, chain: string | undefined, all: string[]): string =>
    (chain !== undefined ? [chain] : all).map((c) => `${verb} chain \`${c}'\n`).join('');
  const names = chainOrder(t.chains).map((c) => c.name);
  switch (cmd.op) {
    case 'append': case 'insert': case 'delete': case 'check':
      return cmd.rules.map((r) => verboseRuleLine(r, t.family, db)).join('');
    case 'replace': return verboseRuleLine(cmd.rule, t.family, db);
    case 'flush': return each('Flushing', cmd.chain, names);
    case 'zero': return each('Zeroing', cmd.chain, names);
    case 'delete-chain': return each('Deleting', cmd.chain, names.filter((n) => !isBuiltin(n)));
    default: return '';
  }
}

function header(o: ListOptions): string {
  let s = '';
  if (o.lineNumbers) s += `${pad('num', 4)} `;
  if (o.verbose) s += o.exact ? `${padL('pkts', 8)} ${padL('bytes', 10)} ` : `${padL('pkts', 5)} ${padL('bytes', 5)} `;
  s += `${pad('target', 9)} `;
  s += ' prot opt';
  if (o.verbose) s += ` ${pad('in', 6)} ${pad('out', 6)} `;
  s += ` ${pad('source', 19)} `;
  s += ` ${pad('destination', 19)} `;
  return s;
}

function references(t: Table, name: string): number {
  let n = 0;
  for (const c of t.chains) for (const r of c.rules) if ((r.verdict.kind === 'jump' || r.verdict.kind === 'goto') && r.verdict.chain === name) n++;
  return n;
}

function chainBlock(t: Table, c: Chain, o: RowOptions): string {
  let head = `Chain ${c.name}`;
  if (c.policy) {
    head += ` (policy ${c.policy}`;
    if (o.verbose) head += ` ${fmtNum(c.counters.packets, o.exact, true)}packets, ${fmtNum(c.counters.bytes, o.exact, true)}bytes`;
    head += ')';
  } else head += ` (${references(t, c.name)} references)`;
  const lines = [head, header(o), ...c.rules.map((r, i) => ruleLine(r, i + 1, o))];
  return lines.join('\n') + '\n';
}

/** The whole listing (or one chain's). */
export function listTable(t: Table, lo: ListOptions, chain?: string): string {
  const o: RowOptions = { ...lo, family: t.family };
  if (chain !== undefined) {
    const c = t.chains.find((x) => x.name === chain);
    if (!c) throw new BpftablesError(`${commandName(t.family)}: No chain/target/match by that name.`, 1);
    return chainBlock(t, c, o);
  }
  return chainOrder(t.chains).map((c) => chainBlock(t, c, o)).join('\n');
}
