/**
 * iptables rule arguments (as in `iptables -A CHAIN ...` or one line of an
 * iptables-save file) → a command carrying an IR rule. getopt-like, with
 * iptables' rules: `!` before an option inverts it, `-m NAME` loads a match
 * whose options follow, an option unknown to the loaded matches loads the
 * match named after `-p` implicitly, and every option is checked.
 */
import type { Arg } from '../grammar/restore-lexer';
import { BareParamError, BpftablesError, paramError, unsupported } from './errors';
import { and6, parseIpv4, parseIpv6, prefixMask6 } from './addr';
import type { AddrMatch, Counters, Family, IfaceMatch, IpPart, Match, Rule, Verdict } from './ir';
import { KNOWN_UNSUPPORTED_MATCHES, MATCH_MODULES, type MatchModule, type OptionSpec } from './matches';
import { type NameDb, protoNumber } from './names';
import { TARGET_MODULES, type TargetModule } from './targets';

/** `rules` has one rule per source × destination address when -s/-d name several (lists, host names). */
export type RuleCommand =
  | { op: 'append'; chain: string; rules: Rule[] }
  | { op: 'insert'; chain: string; index: number; rules: Rule[] };

interface CoreOption { short?: string; long: string; args: number; invertible: boolean }
const CORE: CoreOption[] = [
  { short: '-A', long: '--append', args: 1, invertible: false },
  { short: '-I', long: '--insert', args: 1, invertible: false },
  { short: '-s', long: '--source', args: 1, invertible: true },
  { short: '-d', long: '--destination', args: 1, invertible: true },
  { short: '-p', long: '--protocol', args: 1, invertible: true },
  { short: '-i', long: '--in-interface', args: 1, invertible: true },
  { short: '-o', long: '--out-interface', args: 1, invertible: true },
  { short: '-f', long: '--fragment', args: 0, invertible: true },
  { short: '-j', long: '--jump', args: 1, invertible: false },
  { short: '-g', long: '--goto', args: 1, invertible: false },
  { short: '-m', long: '--match', args: 1, invertible: false },
  { short: '-c', long: '--set-counters', args: 2, invertible: false },
  { short: '-4', long: '--ipv4', args: 0, invertible: false },
  { short: '-6', long: '--ipv6', args: 0, invertible: false },
];
const CORE_ALIASES: Record<string, string> = { '--src': '--source', '--dst': '--destination' };
/** Commands valid in iptables(8) that are not rule-appending; restore lines with them are refused for now. */
const OTHER_COMMANDS = new Set(['-D', '--delete', '-R', '--replace', '-N', '--new-chain', '-X', '--delete-chain',
  '-F', '--flush', '-Z', '--zero', '-P', '--policy', '-E', '--rename-chain', '-L', '--list', '-S', '--list-rules',
  '-C', '--check']);

const CORE_BY_NAME = new Map<string, CoreOption>();
for (const o of CORE) { if (o.short) CORE_BY_NAME.set(o.short, o); CORE_BY_NAME.set(o.long, o); }
for (const [alias, long] of Object.entries(CORE_ALIASES)) CORE_BY_NAME.set(alias, CORE_BY_NAME.get(long)!);

function findCore(name: string): CoreOption | undefined {
  return CORE_BY_NAME.get(name);
}

const sameAddr = (a: AddrMatch, b: AddrMatch): boolean => JSON.stringify(a) === JSON.stringify(b);

/** `-s`/`-d` value: comma-separated addresses or host names, each with an optional /prefix or /mask. */
function parseAddrList(text: string, opt: string, col: number, o: ParseOptions, invert: boolean): AddrMatch[] {
  // the common case, one IPv4 address: no list to split or deduplicate
  if (o.family !== 6 && text.indexOf(',') < 0) {
    const one = parseAddr(text, opt, col, o.db, invert);
    if (one.length === 1) return one;
  }
  const out: AddrMatch[] = [];
  for (const part of text.split(',')) {
    for (const a of o.family === 6 ? parseAddr6(part, opt, col, o.db, invert) : parseAddr(part, opt, col, o.db, invert)) {
      if (!out.some((x) => sameAddr(x, a))) out.push(a);
    }
  }
  return out;
}

const hostName = (host: string): boolean => host !== '' && /^[A-Za-z0-9._-]+$/.test(host);

function parseAddr(text: string, opt: string, col: number, db: NameDb, invert: boolean): AddrMatch[] {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const literal = parseIpv4(host);
  const addrs = literal !== undefined ? [literal] : hostName(host) ? db.resolveHost?.(host) ?? [] : [];
  if (addrs.length === 0) throw paramError(`host/network \`${host}' not found`, opt, col);
  let mask = 0xffffffff;
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    if (m === '32') mask = 0xffffffff;
    else if (/^\d+$/.test(m)) {
      const bits = Number(m);
      if (bits > 32) throw paramError(`invalid mask \`${m}' specified`, opt, col);
      mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    } else {
      const mm = parseIpv4(m);
      if (mm === undefined) throw paramError(`invalid mask \`${m}' specified`, opt, col);
      mask = mm;
    }
  }
  if (addrs.length === 1) return [{ addr: (addrs[0]! & mask) >>> 0, mask, invert }];
  return addrs.map((a) => ({ addr: (a & mask) >>> 0, mask, invert }));
}

function parseAddr6(text: string, opt: string, col: number, db: NameDb, invert: boolean): AddrMatch[] {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const literal = parseIpv6(host);
  const addrs = literal !== undefined ? [literal] : hostName(host) && !/^[\d.]+$/.test(host) ? db.resolveHost6?.(host) ?? [] : [];
  if (addrs.length === 0) throw paramError(`host/network \`${host}' not found`, opt, col);
  let mask = prefixMask6(128);
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    if (/^\d+$/.test(m)) {
      const bits = Number(m);
      if (bits > 128) throw paramError(`invalid mask \`${m}' specified`, opt, col);
      mask = prefixMask6(bits);
    } else {
      const mm = parseIpv6(m);
      if (mm === undefined) throw paramError(`invalid mask \`${m}' specified`, opt, col);
      mask = mm;
    }
  }
  return addrs.map((a) => ({ addr6: and6(a, mask), mask6: mask, invert }));
}

export function parseIface(text: string, opt: string, col: number, invert: boolean): IfaceMatch {
  if (text.length > 15) throw paramError(`interface name \`${text}' must be shorter than IFNAMSIZ (15)`, opt, col);
  const wildcard = text.endsWith('+');
  return { name: wildcard ? text.slice(0, -1) : text, wildcard, invert };
}

export const TARGETS_UNSUPPORTED = new Set(['MASQUERADE', 'SNAT', 'DNAT', 'REDIRECT', 'MARK', 'CONNMARK',
  'NFLOG', 'NFQUEUE', 'QUEUE', 'TCPMSS', 'CT', 'NOTRACK', 'TRACE', 'TEE', 'CLASSIFY', 'DSCP', 'TOS', 'TTL', 'HL',
  'AUDIT', 'CHECKSUM', 'CONNSECMARK', 'SECMARK', 'IDLETIMER', 'LED', 'SET', 'SYNPROXY', 'TPROXY', 'ULOG', 'NETMAP',
  'CLUSTERIP', 'ECN', 'RATEEST', 'TCPOPTSTRIP', 'NFACCT', 'BPF', 'HMARK', 'DNPT', 'SNPT', 'CONNLABEL', 'MIRROR']);

export interface ParseOptions {
  db: NameDb;
  /** 4 (iptables, the default) or 6 (ip6tables) */
  family?: Family;
  /** non-fatal notes iptables prints on stderr (e.g. a protocol that never matches) */
  warn?: (message: string) => void;
}

/**
 * A rule flagged for the other family (`-6` given to iptables, `-4` to
 * ip6tables): iptables-restore skips such lines silently, iptables(8)
 * refuses them with its usage hint alone.
 */
export class OtherFamilyRule extends BpftablesError {
  constructor(option: string, col: number) { super('', 2, { col }, option); }
}

/** ip6tables warns about these: the kernel skips extension headers while looking for the protocol. */
const IPV6_EXT_HEADERS = new Set([43, 44, 51, 60]);

/** getopt's spellings: "--opt=value" and "-Xvalue" (for core short options that take a value). */
function needsNormalizing(t: string): boolean {
  if (t.length < 3 || t.charCodeAt(0) !== 45 /* - */) return false;
  return t.charCodeAt(1) === 45 ? t.indexOf('=') > 2 : true;
}

function normalizeArgs(args: Arg[]): Arg[] {
  if (!args.some((a) => needsNormalizing(a.text))) return args;
  const out: Arg[] = [];
  for (const a of args) {
    const eq = a.text.indexOf('=');
    if (a.text.startsWith('--') && eq > 2) {
      out.push({ text: a.text.slice(0, eq), col: a.col }, { text: a.text.slice(eq + 1), col: a.col + eq + 1 });
      continue;
    }
    const m = /^(-[A-Za-z])(.+)$/.exec(a.text);
    const core = m && CORE.find((o) => o.short === m[1] && o.args > 0);
    if (m && core) {
      out.push({ text: m[1]!, col: a.col }, { text: m[2]!, col: a.col + 2 });
      continue;
    }
    out.push(a);
  }
  return out;
}

/** Parse the arguments of one rule. Errors carry the column of the offending argument. */
export function parseRuleArgs(rawArgs: Arg[], opts: ParseOptions): RuleCommand {
  const args = normalizeArgs(rawArgs);
  const family = opts.family ?? 4;
  const ip: IpPart = {};
  let srcs: AddrMatch[] = [];
  let dsts: AddrMatch[] = [];
  const matches: Match[] = [];
  const loaded: { mod: MatchModule; match: Match; seen: Set<string>; col: number }[] = [];
  let verdict: Verdict = { kind: 'none' };
  let verdictSeen = false;
  let target: { mod: TargetModule; seen: Set<string>; col: number } | undefined;
  let command: { op: 'append' | 'insert'; chain: string; index: number } | undefined;
  let counters: Counters = { packets: 0, bytes: 0 };
  const coreSeen = new Set<string>();
  let invert = false;
  let invertCol = 0;

  const take = (i: number, n: number, opt: string): string[] => {
    const out: string[] = [];
    for (let k = 1; k <= n; k++) {
      const a = args[i + k];
      if (a === undefined) throw paramError(`option "${opt}" requires an argument`, opt, args[i]!.col);
      out.push(a.text);
    }
    return out;
  };

  const loadMatch = (name: string, col: number): void => {
    const mod = MATCH_MODULES.get(name);
    if (!mod || (mod.family !== undefined && mod.family !== family)) {
      if (!mod && KNOWN_UNSUPPORTED_MATCHES.has(name)) throw unsupported(`match \`${name}'`, '-m', col);
      throw new BpftablesError(`Couldn't load match \`${name}':No such file or directory\n`, 2, { col }, '-m');
    }
    const match = mod.create();
    loaded.push({ mod, match, seen: new Set(), col });
    matches.push(match);
  };

  // like iptables, an option belongs to the most recently loaded match that knows it
  const findMatchOption = (name: string): { entry: (typeof loaded)[number]; spec: OptionSpec } | undefined => {
    for (let k = loaded.length - 1; k >= 0; k--) {
      const entry = loaded[k]!;
      const spec = entry.mod.options.find((o) => o.name === name || o.aliases?.includes(name));
      if (spec) return { entry, spec };
    }
    return undefined;
  };

  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.text;
    if (name === '!') {
      if (invert) throw paramError('multiple consecutive ! not allowed', '!', a.col);
      invert = true; invertCol = a.col;
      continue;
    }
    const core = findCore(name);
    if (core) {
      const key = core.long;
      if (invert && !core.invertible) throw paramError(`cannot have ! before ${name}`, name, invertCol);
      if (key !== '--match' && coreSeen.has(key)) throw paramError(`multiple ${core.short ?? key} flags not allowed`, name, a.col);
      coreSeen.add(key);
      const v = take(i, core.args, name);
      // -I takes an optional rule number
      if (key === '--insert' && args[i + 2] && /^\d+$/.test(args[i + 2]!.text)) {
        command = { op: 'insert', chain: v[0]!, index: Number(args[i + 2]!.text) };
        if (command.index < 1) throw paramError(`Invalid rule number \`${args[i + 2]!.text}'`, name, args[i + 2]!.col);
        i += 1;
      }
      const col = args[i + 1]?.col ?? a.col;
      switch (key) {
        case '--append': command = { op: 'append', chain: v[0]!, index: 0 }; break;
        case '--insert': command ??= { op: 'insert', chain: v[0]!, index: 1 }; break;
        case '--source': srcs = parseAddrList(v[0]!, name, col, opts, invert); break;
        case '--destination': dsts = parseAddrList(v[0]!, name, col, opts, invert); break;
        case '--ipv4': case '--ipv6':
          if ((key === '--ipv4') !== (family === 4)) throw new OtherFamilyRule(name, a.col);
          break;
        case '--in-interface': ip.in = parseIface(v[0]!, name, col, invert); break;
        case '--out-interface': ip.out = parseIface(v[0]!, name, col, invert); break;
        case '--fragment':
          if (family === 6) throw paramError("`-f' is not supported in IPv6, use -m frag instead", name, a.col);
          ip.frag = { invert };
          break;
        case '--protocol': {
          const num = protoNumber(v[0]!, opts.db);
          if (num === undefined) throw paramError(`unknown protocol "${v[0]}" specified`, name, col);
          if (num === 0 && invert) throw paramError('rule would never match protocol', name, col);
          // in IPv6 even `-p all` makes the kernel look for the protocol (and drop what it cannot parse)
          if (num !== 0 || family === 6) ip.proto = { num, invert };
          if (family === 6 && IPV6_EXT_HEADERS.has(num)) opts.warn?.(`Warning: never matched protocol: ${v[0]}. use extension match instead.`);
          break;
        }
        case '--match': {
          if (invert) throw paramError('unexpected ! flag before --match', name, invertCol);
          loadMatch(v[0]!.toLowerCase(), col);
          break;
        }
        case '--jump': case '--goto': {
          if (verdictSeen) throw paramError('multiple -j/-g flags not allowed', name, a.col);
          verdictSeen = true;
          const t = v[0]!;
          if (key === '--goto') {
            if (t === 'ACCEPT' || t === 'DROP' || t === 'RETURN') throw paramError(`goto '${t}' is not a chain`, name, col);
            verdict = { kind: 'goto', chain: t };
          } else if (t === 'ACCEPT') verdict = { kind: 'accept' };
          else if (t === 'DROP') verdict = { kind: 'drop' };
          else if (t === 'RETURN') verdict = { kind: 'return' };
          else if (TARGET_MODULES.has(t)) {
            const mod = TARGET_MODULES.get(t)!;
            verdict = mod.create(family);
            target = { mod, seen: new Set(), col };
          } else verdict = { kind: 'jump', chain: t }; // a user chain, or a target extension: decided at COMMIT
          break;
        }
        case '--set-counters': {
          if (!/^\d+$/.test(v[0]!) || !/^\d+$/.test(v[1]!)) throw paramError('-c packet counter not numeric', name, col);
          counters = { packets: Number(v[0]), bytes: Number(v[1]) };
          break;
        }
      }
      i += core.args;
      invert = false;
      continue;
    }
    if (OTHER_COMMANDS.has(name)) throw unsupported(`command ${name} in this context`, name, a.col);
    if (name === '-t' || name === '--table') {
      throw paramError('The -t option cannot be used in iptables-restore.\n', name, a.col);
    }
    const tspec = target?.mod.options.find((o) => o.name === name);
    if (target && tspec) {
      // like iptables, the target's options come before the matches'
      if (invert) throw paramError(`${target.mod.name}: option "${name}" cannot be inverted.\n`, name, invertCol);
      if (target.seen.has(name)) throw paramError(`${target.mod.name}: option "${name}" can only be used once.\n`, name, a.col);
      target.seen.add(name);
      const v = take(i, tspec.args, name);
      try {
        target.mod.parse(verdict as Parameters<TargetModule['parse']>[0], name, v, family);
      } catch (e) {
        if (e instanceof BpftablesError) throw e.at({ col: args[i + 1]?.col ?? a.col });
        throw e;
      }
      i += tspec.args;
      continue;
    }
    if (name.startsWith('-')) {
      let found = findMatchOption(name);
      if (!found && ip.proto && !ip.proto.invert) {
        // implicit match: -p tcp ... --dport loads the tcp match
        const implicit = [...MATCH_MODULES.values()].find((m) => m.protos?.includes(ip.proto!.num) && (m.family ?? family) === family && m.options.some((o) => o.name === name || o.aliases?.includes(name)));
        if (implicit && !loaded.some((l) => l.mod === implicit)) {
          loadMatch(implicit.name, a.col);
          found = findMatchOption(name);
        }
      }
      if (!found) {
        if (verdict.kind === 'jump' && TARGETS_UNSUPPORTED.has(verdict.chain)) throw unsupported(`target ${verdict.chain}`, '-j', a.col);
        throw paramError(`unknown option "${name}"`, name, a.col);
      }
      const { entry, spec } = found;
      if (spec.unsupported) throw unsupported(`option ${spec.name} of match ${entry.mod.name}`, name, a.col);
      const canonical = spec.canonical ?? spec.name;
      if (invert && !spec.invertible) throw paramError(`${entry.mod.name}: option "${canonical}" cannot be inverted.\n`, name, invertCol);
      if (entry.seen.has(spec.name)) {
        throw paramError(entry.mod.oldStyleMessages ? `Only one \`${canonical}' allowed` : `${entry.mod.name}: option "${canonical}" can only be used once.\n`, name, a.col);
      }
      entry.seen.add(spec.name);
      const v = take(i, spec.args, name);
      try {
        entry.mod.parse(entry.match, spec.name, v, invert, { db: opts.db, ip, family });
      } catch (e) {
        if (e instanceof BpftablesError) throw e.at({ col: args[i + 1]?.col ?? a.col });
        throw e;
      }
      i += spec.args;
      invert = false;
      continue;
    }
    throw new BareParamError(`Bad argument \`${name}'`, 2, { col: a.col }, name);
  }
  if (invert) throw paramError('! at the end of the rule', '!', invertCol);
  if (!command) throw paramError('no command specified', undefined, args[0]?.col ?? 1);
  for (const l of loaded) {
    if (l.mod.protos && (!ip.proto || ip.proto.invert || !l.mod.protos.includes(ip.proto.num))) {
      throw paramError(`${l.mod.name} match requires \`-p ${l.mod.name}'`, '-m');
    }
    // an error about the match as a whole (a required option missing, the kernel's refusal) stands where -m loaded it
    try { l.mod.finish(l.match, l.seen, { db: opts.db, ip, family }); } catch (e) {
      if (e instanceof BpftablesError && e.where.col === undefined && e.option === undefined) e.where = { ...e.where, col: l.col };
      throw e;
    }
  }
  if (target) {
    try { target.mod.finish(verdict as Parameters<TargetModule['finish']>[0], ip, family); } catch (e) {
      if (e instanceof BpftablesError && e.where.col === undefined && e.option === undefined) e.where = { ...e.where, col: target.col };
      throw e;
    }
  }
  // one rule per source × destination, sources outermost, as iptables expands them
  const rules: Rule[] = [];
  if (srcs.length <= 1 && dsts.length <= 1) {
    // one rule (the common case): the parts built above are its own
    if (srcs.length) ip.src = srcs[0];
    if (dsts.length) ip.dst = dsts[0];
    rules.push({ ip, matches, verdict, counters });
    return command.op === 'append'
      ? { op: 'append', chain: command.chain, rules }
      : { op: 'insert', chain: command.chain, index: command.index, rules };
  }
  for (const src of srcs.length ? srcs : [undefined]) {
    for (const dst of dsts.length ? dsts : [undefined]) {
      const rip: IpPart = { ...ip };
      if (src) rip.src = src;
      if (dst) rip.dst = dst;
      rules.push({ ip: rip, matches: rules.length ? structuredClone(matches) : matches, verdict, counters: { ...counters } });
    }
  }
  if ((srcs.some((s) => s.invert) || dsts.some((d) => d.invert)) && rules.length > 1) {
    throw paramError('! not allowed with multiple source or destination IP addresses', srcs.length > 1 ? '-s' : '-d');
  }
  return command.op === 'append'
    ? { op: 'append', chain: command.chain, rules }
    : { op: 'insert', chain: command.chain, index: command.index, rules };
}
