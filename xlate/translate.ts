/**
 * iptables → nft, as iptables-translate prints it, pure: an iptables
 * command line (parsed by the iptables front end into the IR) → the nft
 * command, in iptables' own order: interfaces, the fragment test, the
 * protocol (unless a match named after it says it), addresses, the matches,
 * `counter` (iptables counts every rule), the verdict, the comment.
 *
 * A rule with a match, target or option this module cannot express, and
 * anything bpftables' parser refuses, is printed the way iptables prints an
 * untranslatable rule: `nft # ` and the command as given. Never a guess.
 */
import { parseIptablesArgv, toCommand } from './command-parse';
import { splitArgs } from '../grammar/restore-lexer';
import { fmtIpv4, fmtIpv6, maskBits6 } from './addr';
import { BpftablesError } from './errors';
import { type AddrMatch, CT_MATCH_STATES, CT_STATUS_BITS, type Family, type IfaceMatch, isAddr6, isRange6, LOG_DEFAULT_LEVEL, type Match, type PortMatch, type Rule, TCP_FLAGS } from './ir';
import type { NameDb } from './names';
import { protoName } from './names';
import { maskBits } from './save';
import { TARGETS_UNSUPPORTED } from './rule-parse';
import { ADDR_TYPES, fmtMac } from './matches';

const ICMP6_NAMES: Record<number, string> = {
  1: 'destination-unreachable', 2: 'packet-too-big', 3: 'time-exceeded', 4: 'parameter-problem', 128: 'echo-request', 129: 'echo-reply',
  130: 'mld-listener-query', 131: 'mld-listener-report', 132: 'mld-listener-done', 133: 'nd-router-solicit', 134: 'nd-router-advert',
  135: 'nd-neighbor-solicit', 136: 'nd-neighbor-advert', 137: 'nd-redirect', 138: 'router-renumbering', 141: 'ind-neighbor-solicit',
  142: 'ind-neighbor-advert', 143: 'mld2-listener-report',
};

/** nft's names of the syslog levels (iptables --log-level takes the same numbers). */
const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];
/** REJECT answers whose nft name is not the iptables name without its icmp- prefix */
const REJECT_NAMES: Record<string, string> = { 'icmp-proto-unreachable': 'prot-unreachable', 'icmp6-adm-prohibited': 'admin-prohibited' };

/**
 * A piece this module has no nft form for that filters as iptables does: the
 * rule is printed untranslated. `reason` says why when nft has a form that
 * filters otherwise (iptables-translate prints that one; `migrate` reports it).
 */
class Untranslatable extends Error {
  constructor(readonly reason?: string) { super(reason ?? 'untranslatable'); }
}

/** nft's fib address types (iptables' addrtype names, lower case); nft has no name for THROW, NAT or XRESOLVE. */
/** nft's names of route types; THROW, NAT and XRESOLVE nft reads and lists by number (9 to 11) */
const FIB_TYPES = ADDR_TYPES.map((n, i) => (i < ADDR_TYPES.indexOf('THROW') ? n.toLowerCase() : String(i)));
/** ecn --ecn-ip-ect values by nft's names */
const ECN_NAMES = ['not-ect', 'ect1', 'ect0', 'ce'];

const ICMP_NAMES: Record<number, string> = {
  0: 'echo-reply', 3: 'destination-unreachable', 4: 'source-quench', 5: 'redirect', 8: 'echo-request', 9: 'router-advertisement',
  10: 'router-solicitation', 11: 'time-exceeded', 12: 'parameter-problem', 13: 'timestamp-request', 14: 'timestamp-reply',
  15: 'info-request', 16: 'info-reply', 17: 'address-mask-request', 18: 'address-mask-reply',
};

function ifname(key: string, i: IfaceMatch | undefined): string[] {
  if (!i) return [];
  // iptables' rules: `+` alone always matches (nothing to say; inverted, a name that cannot exist), a final
  // `*` of a plain name is literal (escaped), `+` becomes `*`
  if (i.wildcard && i.name === '') return i.invert ? [`${key} "INVAL/D"`] : [];
  let name = i.name.replace(/["\\]/g, (c) => `\\${c}`);
  if (!i.wildcard && name.endsWith('*')) name = `${name.slice(0, -1)}\\*`;
  return [`${key} ${i.invert ? '!= ' : ''}"${name}${i.wildcard ? '*' : ''}"`];
}

function addr(key: string, a: AddrMatch | undefined): string[] {
  if (!a) return [];
  const neq = a.invert ? '!= ' : '';
  if (isAddr6(a)) {
    const bits = maskBits6(a.mask6);
    if (bits === 0 && !a.invert) return [];
    if (bits === undefined) return [`${key} & ${fmtIpv6(a.mask6)} ${a.invert ? '!=' : '=='} ${fmtIpv6(a.addr6)}`];
    return [`${key} ${neq}${fmtIpv6(a.addr6)}${bits === 128 ? '' : `/${bits}`}`];
  }
  const m = a.mask >>> 0;
  const bits = maskBits(m);
  if (m === 0 && !a.invert) return [];
  if (bits === undefined) return [`${key} & ${fmtIpv4(m)} ${a.invert ? '!=' : '=='} ${fmtIpv4(a.addr)}`];
  return [`${key} ${neq}${fmtIpv4(a.addr)}${bits === 32 ? '' : `/${bits}`}`];
}

/** conntrack states in iptables' printing order, lower case */
const ctStates = (states: readonly string[]): string => CT_MATCH_STATES.filter((s) => states.includes(s)).map((s) => s.toLowerCase()).join(',');
const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;
const portText = (p: PortMatch): string => `${p.invert ? '!= ' : ''}${p.range[0] === p.range[1] ? p.range[0] : `${p.range[0]}-${p.range[1]}`}`;
const flagNames = (bits: number): string => Object.entries(TCP_FLAGS).filter(([, b]) => bits & b).map(([n]) => (n === 'ECE' ? 'ecn' : n.toLowerCase())).join(',');

function match(m: Match, r: Rule, family: Family, db: NameDb): string[] {
  const ip6 = family === 6 ? 'ip6' : 'ip';
  switch (m.kind) {
    case 'tcp': case 'udp': {
      const out: string[] = [];
      for (const [k, p] of [['sport', m.sport], ['dport', m.dport]] as const) {
        if (!p || (!p.invert && p.range[0] === 0 && p.range[1] === 65535)) continue;
        out.push(`${m.kind} ${k} ${portText(p)}`);
      }
      if (m.kind === 'tcp' && m.flags) {
        if (m.flags.invert) throw new Untranslatable();
        out.push(`tcp flags ${flagNames(m.flags.comp)} / ${flagNames(m.flags.mask)}`);
      }
      return out.length ? out : [`meta l4proto ${m.kind}`];
    }
    case 'multiport': {
      const proto = r.ip.proto && !r.ip.proto.invert ? protoName(r.ip.proto.num, db) : undefined;
      if (!proto || m.dir === 'any') throw new Untranslatable();
      const one = (x: [number, number]): string => (x[0] === x[1] ? `${x[0]}` : `${x[0]}-${x[1]}`);
      const val = m.ports.length === 1 ? one(m.ports[0]!) : `{ ${m.ports.map(one).join(', ')} }`;
      return [`${proto} ${m.dir === 'src' ? 'sport' : 'dport'} ${m.invert ? '!= ' : ''}${val}`];
    }
    case 'icmp': case 'icmp6': {
      if (m.kind === 'icmp' && m.type === 0xff) { if (m.invert) throw new Untranslatable(); return ['ip protocol icmp']; }
      const name = (m.kind === 'icmp' ? ICMP_NAMES : ICMP6_NAMES)[m.type];
      if (!name || m.codeMin !== 0 || m.codeMax !== 0xff) throw new Untranslatable();
      return [`${m.kind === 'icmp' ? 'icmp' : 'icmpv6'} type ${m.invert ? '!= ' : ''}${name}`];
    }
    case 'state': return [`ct state ${m.invert ? '! ' : ''}${ctStates(m.states)}`];
    case 'conntrack': {
      // iptables' order: direction, protocol, state, status, expiration, the tuples' addresses, then their ports
      const out: string[] = [];
      if (m.dir) out.push(`ct direction ${m.dir.toLowerCase()}`);
      if (m.proto) out.push(`ct original protocol ${m.proto.invert ? '!= ' : ''}${m.proto.num}`);
      const nat = m.ctstate.filter((s) => s === 'SNAT' || s === 'DNAT'), plain = m.ctstate.filter((s) => s !== 'SNAT' && s !== 'DNAT');
      if (nat.length && (plain.length || m.invert || m.status)) throw new Untranslatable();
      if (plain.length) out.push(`ct state ${m.invert ? '! ' : ''}${ctStates(plain)}`);
      if (nat.length) out.push(`ct status ${nat.map((s) => s.toLowerCase()).join(',')}`);
      if (m.status) {
        const names = CT_STATUS_BITS.filter(([, b]) => m.status!.mask & b).map(([n]) => n.toLowerCase().replace('_', '-'));
        if (!names.length) throw new Untranslatable();
        out.push(`ct status ${m.status.invert ? '! ' : ''}${names.join(',')}`);
      }
      if (m.expire) out.push(`ct expiration ${m.expire.invert ? '!= ' : ''}${m.expire.min === m.expire.max ? m.expire.min : `${m.expire.min}-${m.expire.max}`}`);
      for (const [k, a] of [['ct original saddr', m.origsrc], ['ct original daddr', m.origdst], ['ct reply saddr', m.replsrc], ['ct reply daddr', m.repldst]] as const) {
        if (a) out.push(...addr(k, a));
      }
      for (const [k, p] of [['ct original proto-src', m.origsrcport], ['ct original proto-dst', m.origdstport], ['ct reply proto-src', m.replsrcport], ['ct reply proto-dst', m.repldstport]] as const) {
        if (p) out.push(`${k} ${portText(p)}`);
      }
      return out;
    }
    case 'comment': return [];
    case 'iprange': {
      const out: string[] = [];
      for (const [k, x] of [['saddr', m.src], ['daddr', m.dst]] as const) {
        if (!x) continue;
        out.push(`${ip6} ${k} ${x.invert ? '!= ' : ''}${isRange6(x) ? `${fmtIpv6(x.from6)}-${fmtIpv6(x.to6)}` : `${fmtIpv4(x.from)}-${fmtIpv4(x.to)}`}`);
      }
      return out;
    }
    case 'length': return [`meta length ${m.invert ? '!= ' : ''}${m.min === m.max ? m.min : `${m.min}-${m.max}`}`];
    case 'mark': case 'connmark': {
      const key = m.kind === 'mark' ? 'mark' : 'ct mark';
      if ((m.mask >>> 0) === 0xffffffff) return [`${key} ${m.invert ? '!= ' : ''}${hex(m.value)}`];
      return [`${key} and ${hex(m.mask)} ${m.invert ? '!=' : '=='} ${hex(m.value)}`];
    }
    case 'ttl': case 'hl': {
      const key = m.kind === 'ttl' ? 'ip ttl' : 'ip6 hoplimit';
      if (m.op === 'eq') return [`${key} ${m.invert ? '!= ' : ''}${m.value}`];
      if (m.invert) throw new Untranslatable();
      return [`${key} ${m.op} ${m.value}`];
    }
    case 'dscp': return [`${ip6} dscp ${m.invert ? '!= ' : ''}${hex(m.value)}`];
    case 'addrtype': {
      // nft's fib asks the IPv4 question addrtype asks; its IPv6 fib is another question (xlate/ir.ts)
      if (family === 6 || m.fib) throw new Untranslatable();
      const dev = m.limitIn ? ' . iif' : m.limitOut ? ' . oif' : '';
      const out: string[] = [];
      // both sides (iptables-translate 1.8.9 prints one of them only, the other's negation on it)
      for (const [k, side] of [['saddr', m.src], ['daddr', m.dst]] as const) {
        if (!side) continue;
        const names = FIB_TYPES.filter((_, i) => side.types & (1 << i));
        const val = names.length === 1 ? names[0]! : `{ ${names.join(', ')} }`;
        out.push(`fib ${k}${dev} type ${side.invert ? '!= ' : ''}${val}`);
      }
      return out;
    }
    case 'ecn': {
      // iptables' order: ECE, CWR, then the IP header's ECT bits (for IPv6 the traffic class's, which nft calls
      // ip6 ecn, where iptables-translate 1.8.9 says ip ecn). A negated flag is `tcp flags ! F` (the flag not set):
      // iptables-translate's `tcp flags != F` compares the whole flags byte with F alone
      const out: string[] = [];
      if (m.ece) out.push(`tcp flags ${m.ece.invert ? '! ' : ''}ecn`);
      if (m.cwr) out.push(`tcp flags ${m.cwr.invert ? '! ' : ''}cwr`);
      if (m.ect) out.push(`${ip6} ecn ${m.ect.invert ? '!= ' : ''}${ECN_NAMES[m.ect.value]}`);
      return out;
    }
    case 'owner': {
      // as iptables-translate: one of --uid-owner and --gid-owner, nothing else
      if (m.nft || m.socketExists || (m.uid && m.gid)) throw new Untranslatable();
      const [key, range] = m.uid ? ['skuid', m.uid] as const : ['skgid', m.gid!] as const;
      // xt_owner's negation holds for a packet without a socket (or without its file); nft's meta skuid/skgid match no such packet
      if (range.invert) throw new Untranslatable(`a packet without a socket matches iptables' negated --${key === 'skuid' ? 'uid' : 'gid'}-owner, and none matches nft's ${key} !=`);
      return [`${key} ${range.min === range.max ? range.min : `${range.min}-${range.max}`}`];
    }
    case 'pkttype':
      // iptables-translate names unicast (nft's host) and the others by their iptables names, otherhost by its number
      return [`pkttype ${m.invert ? '!= ' : ''}${['unicast', 'broadcast', 'multicast'][m.type] ?? m.type}`];
    case 'mac': return [`ether saddr ${m.invert ? '!= ' : ''}${fmtMac(m.addr)}`];
    case 'statistic': {
      if (m.mode === 'random') return [`meta random & 2147483647 ${m.invert ? '>=' : '<'} ${m.probability}`];
      // iptables matches packet --packet + 1 of every n first (its count starts at n - 1 - packet); nft's numgen
      // gives packet k the value (k - 1) mod n (the kernel starts its counter at n - 1): the same packets
      return [`numgen inc mod ${m.every + 1} ${m.invert ? '!= ' : ''}${m.packet}`];
    }
    case 'tcpmss':
      // xt_tcpmss's negation holds for a packet without the MSS option; nft's tcp option maxseg matches no such packet
      if (m.invert) throw new Untranslatable('a TCP packet without the MSS option matches iptables\' negated --mss, and none matches nft\'s tcp option maxseg size !=');
      return [`tcp option maxseg size ${m.min === m.max ? m.min : `${m.min}-${m.max}`}`];
    default: throw new Untranslatable();
  }
}

/** iptables' limit units, largest first: XT_LIMIT_SCALE (10000) per second times the unit's seconds. */
const RATES: [string, number][] = [['day', 10000 * 86400], ['hour', 10000 * 3600], ['minute', 10000 * 60], ['second', 10000]];
function limitRate(avg: number): string {
  let i = 1;
  for (; i < RATES.length; i++) if (avg > RATES[i]![1] || Math.floor(RATES[i]![1] / avg) < RATES[i]![1] % avg) break;
  const [name, mult] = RATES[i - 1]!;
  return `${Math.floor(mult / avg)}/${name}`;
}

/** The nft statements of one rule, in iptables-translate's order. */
function ruleText(r: Rule, family: Family, db: NameDb): string {
  const parts: string[] = [...ifname('iifname', r.ip.in), ...ifname('oifname', r.ip.out)];
  if (r.ip.frag) parts.push(`ip frag-off & 0x1fff ${r.ip.frag.invert ? '' : '!= '}0`);
  const p = r.ip.proto;
  // a match named after the protocol (tcp, udp, icmp) says it itself, unless a match with state (limit, nth)
  // comes first: iptables tests the protocol before every match, nft where the statement stands, and the
  // state would count other packets (iptables-translate 1.8.9 leaves the protocol to the later match)
  const stateful = r.matches.findIndex((m) => m.kind === 'limit' || (m.kind === 'statistic' && m.mode === 'nth'));
  const namedAt = p ? r.matches.findIndex((m) => m.kind === protoName(p.num, db)) : -1;
  const named = namedAt >= 0 && (stateful < 0 || namedAt < stateful);
  if (p && (p.num !== 0 || p.invert) && !named) parts.push(`${family === 6 ? 'meta l4proto' : 'ip protocol'} ${p.invert ? '!= ' : ''}${protoName(p.num, db)}`);
  parts.push(...addr(family === 6 ? 'ip6 saddr' : 'ip saddr', r.ip.src), ...addr(family === 6 ? 'ip6 daddr' : 'ip daddr', r.ip.dst));
  for (const m of r.matches) {
    if (m.kind === 'limit') { parts.push(`limit rate ${limitRate(m.avg)}${m.burst ? ` burst ${m.burst} packets` : ''}`); continue; }
    parts.push(...match(m, r, family, db));
  }
  parts.push('counter');
  const v = r.verdict;
  switch (v.kind) {
    case 'accept': case 'drop': case 'return': parts.push(v.kind); break;
    case 'jump': case 'goto':
      // a target extension without a module here parses as a jump to a chain of its name (decided at COMMIT)
      if (TARGETS_UNSUPPORTED.has(v.chain)) throw new Untranslatable();
      parts.push(`${v.kind} ${v.chain}`);
      break;
    case 'none': break;
    case 'log': {
      if (v.flags) throw new Untranslatable();
      let text = 'log';
      if (v.prefix) text += ` prefix "${v.prefix}"`;
      if (v.level !== LOG_DEFAULT_LEVEL) text += ` level ${LOG_LEVELS[v.level]}`;
      parts.push(text);
      break;
    }
    case 'reject': {
      if (v.with === 'tcp-reset') parts.push('reject with tcp reset');
      else if (v.with === 'icmp-port-unreachable' || v.with === 'icmp6-port-unreachable') parts.push('reject');
      else parts.push(`reject with ${v.with.startsWith('icmp6') ? 'icmpv6' : 'icmp'} type ${REJECT_NAMES[v.with] ?? v.with.replace(/^icmp6?-/, '')}`);
      break;
    }
  }
  const comment = r.matches.find((m): m is Extract<Match, { kind: 'comment' }> => m.kind === 'comment');
  // as iptables prints it: the text as it is (nft has no escape for a quote inside a string)
  if (comment) parts.push(`comment "${comment.text}"`);
  return parts.join(' ');
}

/**
 * The nft commands of one iptables command (`add rule ip filter CHAIN ...`,
 * one per address pair, as iptables makes), or why there is no exact
 * translation (`reason`: what nft's nearest form would filter otherwise).
 */
function ruleCommands(argv: string[], family: Family, db: NameDb): { commands: string[] } | { commands: null; reason?: string } {
  try {
    const p = parseIptablesArgv(argv, family);
    if (typeof p === 'string' || !['filter', 'nat', 'mangle', 'raw', 'security'].includes(p.table)) return { commands: null };
    const cmd = toCommand(p, { db, family });
    if (!cmd || (cmd.op !== 'append' && cmd.op !== 'insert') || (cmd.op === 'insert' && cmd.index !== 1)) return { commands: null };
    const verb = cmd.op === 'append' ? 'add' : 'insert';
    return { commands: cmd.rules.map((r) => `${verb} rule ${family === 6 ? 'ip6' : 'ip'} ${p.table} ${cmd.chain} ${ruleText(r, family, db)}`) };
  } catch (e) {
    if (e instanceof Untranslatable) return { commands: null, reason: e.reason };
    if (e instanceof BpftablesError) return { commands: null };
    throw e;
  }
}

/**
 * `iptables-translate ARGS` (`ip6tables-translate` with family 6) → what it
 * prints: `nft '...'` per command of ruleCommands, or `nft # ARGS` when not
 * translatable.
 */
export function translateCommand(argv: string[], family: Family, db: NameDb): string {
  const { commands } = ruleCommands(argv, family, db);
  return commands ? commands.map((c) => `nft '${c}'\n`).join('') : `nft # ${argv.join(' ')}\n`;
}

/** nft's base chain for each built-in chain of each iptables table: type and priority (iptables-restore-translate's). */
const BASE_CHAINS: Record<string, Record<string, [string, number]>> = {
  filter: { INPUT: ['filter', 0], FORWARD: ['filter', 0], OUTPUT: ['filter', 0] },
  nat: { PREROUTING: ['nat', -100], INPUT: ['nat', 100], OUTPUT: ['nat', -100], POSTROUTING: ['nat', 100] },
  mangle: { PREROUTING: ['filter', -150], INPUT: ['filter', -150], FORWARD: ['filter', -150], OUTPUT: ['route', -150], POSTROUTING: ['filter', -150] },
  raw: { PREROUTING: ['filter', -300], OUTPUT: ['filter', -300] },
  security: { INPUT: ['filter', 50], FORWARD: ['filter', 50], OUTPUT: ['filter', 50] },
};

/** A save file's chain line (`:NAME POLICY [p:b]`) as nft's `add chain`, a built-in one with its hook. */
function chainCommand(fam: string, table: string, line: string): string {
  const [name, policy] = line.slice(1).trim().split(/\s+/);
  const base = BASE_CHAINS[table]?.[name!];
  return base && policy !== '-'
    ? `add chain ${fam} ${table} ${name} { type ${base[0]} hook ${name!.toLowerCase()} priority ${base[1]}; policy ${policy!.toLowerCase()}; }\n`
    : `add chain ${fam} ${table} ${name}\n`;
}

/** What a save-file walk meets: a `*table` line, a `:chain` line (as nft's add chain), a rule with its nft commands (null: untranslatable). */
interface SaveFileVisitor {
  table(name: string): void;
  chain(command: string): void;
  rule(r: { table: string; line: string; lineNo: number; args: string[]; commands: string[] | null; reason?: string }): void;
}

/** Walk an iptables-save file line by line, translating its chain and rule lines (comments, blanks and COMMIT skipped). */
function walkSaveFile(text: string, family: Family, db: NameDb, v: SaveFileVisitor): void {
  const fam = family === 6 ? 'ip6' : 'ip';
  let table = '';
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('*')) { table = line.slice(1).trim(); v.table(table); return; }
    if (line.startsWith(':')) { v.chain(chainCommand(fam, table, line)); return; }
    if (!line.trim() || line.startsWith('#') || /^COMMIT\s*$/.test(line)) return;
    // iptables-restore's quoting; a leading [p:b] dropped
    const args = splitArgs(line.replace(/^\[\d+:\d+\]\s*/, '')).map((a) => a.text);
    v.rule({ table, line, lineNo: i + 1, args, ...ruleCommands(['-t', table, ...args], family, db) });
  });
}

/**
 * `iptables-restore-translate -f FILE` (ip6tables- with family 6): the
 * file's tables, chains and rules as nft commands in file order, between
 * iptables' header and footer. A rule without an exact translation is
 * printed as iptables prints one: a comment holding the command.
 */
export function translateRestore(text: string, family: Family, db: NameDb, stamp: string, prog: string): string {
  const fam = family === 6 ? 'ip6' : 'ip';
  let out = `# Translated by ${prog} v1.8.11 (bpftables) on ${stamp}\n`;
  walkSaveFile(text, family, db, {
    table: (name) => { out += `add table ${fam} ${name}\n`; },
    chain: (command) => { out += command; },
    // iptables' untranslated form: the command with its table, and a space after it
    rule: ({ table, args, commands }) => { out += commands ? commands.map((c) => `${c}\n`).join('') : `# -t ${table} ${args.join(' ')} \n`; },
  });
  return `${out}# Completed on ${stamp}\n`;
}

/** A rule `migrate` could not carry over exactly. */
export interface LossyRule { line: number; rule: string; reason: string }

/**
 * An iptables-save file as an nft file the kernel's `nft -f` loads: the
 * tables, chains and rules of translateRestore, one `table` per iptables
 * table flushed first (so the file can be loaded again); a rule without an
 * exact translation stays as a comment and is listed in `lossy`.
 */
export function migrateToNft(text: string, family: Family, db: NameDb, source: string): { nft: string; lossy: LossyRule[] } {
  const fam = family === 6 ? 'ip6' : 'ip';
  const lossy: LossyRule[] = [];
  let out = `#!/usr/sbin/nft -f\n# migrated by bpftables from ${source}\n`;
  walkSaveFile(text, family, db, {
    // create-then-delete makes a reload start from an empty table, whether or not it existed
    table: (name) => { out += `table ${fam} ${name}\ndelete table ${fam} ${name}\nadd table ${fam} ${name}\n`; },
    chain: (command) => { out += command; },
    rule: ({ line, lineNo, commands, reason }) => {
      // nft's strings cannot hold a double quote (iptables-translate prints one anyway)
      const quoted = commands?.find((c) => /comment ".*".*"/.test(c));
      if (commands && !quoted) { out += commands.map((c) => `${c}\n`).join(''); return; }
      if (quoted) {
        lossy.push({ line: lineNo, rule: line, reason: 'a comment with a double quote, which nft strings cannot hold' });
        out += `# not migrated (line ${lineNo}): ${line}\n`;
        return;
      }
      lossy.push({ line: lineNo, rule: line, reason: reason ? `no exact nft translation: ${reason}` : 'no exact nft translation in bpftables yet' });
      out += `# not migrated (line ${lineNo}): ${line}\n`;
    },
  });
  return { nft: out, lossy };
}
