/**
 * Match extensions: how each parses its options (iptables syntax) into the
 * IR and how it prints back in iptables-save's canonical form. One table,
 * keyed by module name; the rule parser and the printer both use it.
 */
import { paramError, unsupported } from './errors';
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6 } from './addr';

export { fmtIpv4, parseIpv4 };
import { CT_STATES, type CtState, type Family, type Ip6Range, type IpPart, type IpRange, isRange6, type Match, type Range, TCP_FLAGS } from './ir';
import { ICMP_TYPES, ICMP6_TYPES, type NameDb } from './names';

export interface OptionSpec { name: string; args: number; invertible: boolean; aliases?: string[]; unsupported?: boolean }

export interface ParseCtx { db: NameDb; ip: IpPart; family: Family }

export interface MatchModule {
  name: string;
  options: OptionSpec[];
  /** protocol the match requires (-p), if any */
  protos?: number[];
  /** the one family the extension exists for (libipt_* / libip6t_*); absent: both (libxt_*) */
  family?: Family;
  create(): Match;
  parse(m: Match, opt: string, args: string[], invert: boolean, ctx: ParseCtx): void;
  /** called once all options are seen; throws on missing required options */
  finish(m: Match, seen: Set<string>, ctx: ParseCtx): void;
  save(m: Match, db: NameDb): string;
}

const PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ICMP = 1, PROTO_ICMPV6 = 58, PROTO_UDPLITE = 136, PROTO_SCTP = 132, PROTO_DCCP = 33;

export function parseUint(text: string, max: number, what: string): number {
  if (!/^\d+$/.test(text)) throw paramError(`invalid ${what} \`${text}' specified`);
  const n = Number(text);
  if (n > max) throw paramError(`invalid ${what} \`${text}' specified`);
  return n;
}

function protoNameForService(ip: IpPart): string {
  return ip.proto?.num === PROTO_UDP ? 'udp' : ip.proto?.num === PROTO_SCTP ? 'sctp' : ip.proto?.num === PROTO_DCCP ? 'dccp' : 'tcp';
}

export function parsePort(text: string, ctx: ParseCtx): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n > 65535) throw paramError(`invalid port/service \`${text}' specified`);
    return n;
  }
  const p = ctx.db.service(text, protoNameForService(ctx.ip));
  if (p === undefined) throw paramError(`invalid port/service \`${text}' specified`);
  return p;
}

/** "a", "a:b", ":b", "a:", ":" */
export function parsePortRange(text: string, ctx: ParseCtx): Range {
  const i = text.indexOf(':');
  if (i < 0) { const p = parsePort(text, ctx); return [p, p]; }
  const lo = i === 0 ? 0 : parsePort(text.slice(0, i), ctx);
  const hi = i === text.length - 1 ? 65535 : parsePort(text.slice(i + 1), ctx);
  if (lo > hi) throw paramError(`invalid portrange (min > max) \`${text}'`);
  return [lo, hi];
}

function fmtRange([lo, hi]: Range): string { return lo === hi ? String(lo) : `${lo}:${hi}`; }
const bang = (inv: boolean): string => (inv ? '! ' : '');

function parseTcpFlags(text: string): number {
  if (text === 'ALL') return 0x3f;
  if (text === 'NONE') return 0;
  let v = 0;
  for (const f of text.split(',')) {
    const bit = f === 'ALL' ? 0x3f : f === 'NONE' ? 0 : (TCP_FLAGS as Record<string, number>)[f];
    if (bit === undefined) throw paramError(`Unknown TCP flag \`${f}'`);
    v |= bit;
  }
  return v;
}
function fmtTcpFlags(v: number): string {
  if (v === 0) return 'NONE';
  const names = Object.entries(TCP_FLAGS).filter(([, b]) => v & b).map(([n]) => n);
  return names.join(',');
}

function parseStates(text: string, allowed: readonly string[]): CtState[] {
  const out = new Set<CtState>();
  for (const s of text.split(',')) {
    const u = s.toUpperCase();
    if (u === 'SNAT' || u === 'DNAT') throw unsupported(`connection tracking state ${u}`, '--ctstate');
    if (!allowed.includes(u)) throw paramError(`Bad ctstate "${s}"`);
    out.add(u as CtState);
  }
  return CT_STATES.filter((s) => out.has(s));
}

const tcpLike = (proto: 'tcp' | 'udp'): MatchModule => ({
  name: proto,
  protos: [proto === 'tcp' ? PROTO_TCP : PROTO_UDP],
  options: [
    { name: '--sport', aliases: ['--source-port'], args: 1, invertible: true },
    { name: '--dport', aliases: ['--destination-port'], args: 1, invertible: true },
    ...(proto === 'tcp' ? [
      { name: '--tcp-flags', args: 2, invertible: true },
      { name: '--syn', args: 0, invertible: true },
      { name: '--tcp-option', args: 1, invertible: true, unsupported: true },
    ] : []),
  ],
  create: () => ({ kind: proto } as Match),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'tcp' }>;
    switch (opt) {
      case '--sport': t.sport = { range: parsePortRange(args[0]!, ctx), invert }; break;
      case '--dport': t.dport = { range: parsePortRange(args[0]!, ctx), invert }; break;
      case '--tcp-flags':
        t.flags = { mask: parseTcpFlags(args[0]!), comp: parseTcpFlags(args[1]!), invert };
        break;
      case '--syn':
        t.flags = { mask: 0x17, comp: 0x02, invert };
        break;
    }
  },
  finish(_m, seen) {
    if (seen.has('--syn') && seen.has('--tcp-flags')) throw paramError('Only one of `--syn\' or `--tcp-flags\' may be specified');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'tcp' }>;
    let s = '';
    const port = (o: string, p?: { range: Range; invert: boolean }): void => {
      if (!p) return;
      if (!p.invert && p.range[0] === 0 && p.range[1] === 65535) return;
      s += ` ${bang(p.invert)}${o} ${fmtRange(p.range)}`;
    };
    port('--sport', t.sport);
    port('--dport', t.dport);
    if (t.flags) s += ` ${bang(t.flags.invert)}--tcp-flags ${fmtTcpFlags(t.flags.mask)} ${fmtTcpFlags(t.flags.comp)}`;
    return s;
  },
});

const icmp: MatchModule = {
  name: 'icmp',
  family: 4,
  protos: [PROTO_ICMP],
  options: [{ name: '--icmp-type', args: 1, invertible: true }],
  create: () => ({ kind: 'icmp', type: 0xff, codeMin: 0, codeMax: 0xff, invert: false }),
  parse(m, _opt, args, invert) {
    const t = m as Extract<Match, { kind: 'icmp' }>;
    const text = args[0]!;
    const named = ICMP_TYPES.find(([n]) => n === text) ?? ICMP_TYPES.find(([n]) => n.startsWith(text) && text.length > 0 && !/^\d/.test(text));
    if (named) {
      [, t.type, t.codeMin, t.codeMax] = named;
    } else {
      const mm = /^(\d+)(?:\/(\d+)(?::(\d+))?)?$/.exec(text);
      if (!mm) throw paramError(`Invalid ICMP type \`${text}'`);
      t.type = parseUint(mm[1]!, 255, 'ICMP type');
      if (mm[2] !== undefined) {
        t.codeMin = parseUint(mm[2], 255, 'ICMP code');
        t.codeMax = mm[3] !== undefined ? parseUint(mm[3], 255, 'ICMP code') : t.codeMin;
      } else { t.codeMin = 0; t.codeMax = 0xff; }
    }
    t.invert = invert;
  },
  finish(_m, seen) {
    if (!seen.has('--icmp-type')) throw paramError('icmp match: you must specify `--icmp-type\'');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'icmp' }>;
    // type 255 with the full code range is "any"
    if (t.type === 0xff && t.codeMin === 0 && t.codeMax === 0xff) return ` ${bang(t.invert)}--icmp-type any`;
    let s = ` ${bang(t.invert)}--icmp-type ${t.type}`;
    if (t.codeMin !== 0 || t.codeMax !== 0xff) s += `/${t.codeMin}`;
    return s;
  },
};

const icmp6: MatchModule = {
  name: 'icmp6',
  family: 6,
  protos: [PROTO_ICMPV6],
  options: [{ name: '--icmpv6-type', args: 1, invertible: true }],
  create: () => ({ kind: 'icmp6', type: 0, codeMin: 0, codeMax: 0xff, invert: false }),
  parse(m, _opt, args, invert) {
    const t = m as Extract<Match, { kind: 'icmp6' }>;
    const text = args[0]!;
    const named = ICMP6_TYPES.find(([n]) => n === text) ?? ICMP6_TYPES.find(([n]) => n.startsWith(text) && text.length > 0 && !/^\d/.test(text));
    if (named) {
      [, t.type, t.codeMin, t.codeMax] = named;
    } else {
      const mm = /^(\d+)(?:\/(\d+))?$/.exec(text);
      if (!mm) throw paramError(`Unknown ICMPv6 type \`${text}'`);
      t.type = parseUint(mm[1]!, 255, 'ICMPv6 type');
      if (mm[2] !== undefined) t.codeMin = t.codeMax = parseUint(mm[2], 255, 'ICMPv6 code');
      else { t.codeMin = 0; t.codeMax = 0xff; }
    }
    t.invert = invert;
  },
  finish(_m, seen) {
    if (!seen.has('--icmpv6-type')) throw paramError('icmp6 match: you must specify `--icmpv6-type\'');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'icmp6' }>;
    let s = ` ${bang(t.invert)}--icmpv6-type ${t.type}`;
    if (t.codeMin !== 0 || t.codeMax !== 0xff) s += `/${t.codeMin}`;
    return s;
  },
};

const multiport: MatchModule = {
  name: 'multiport',
  options: [
    { name: '--sports', aliases: ['--source-ports'], args: 1, invertible: true },
    { name: '--dports', aliases: ['--destination-ports'], args: 1, invertible: true },
    { name: '--ports', args: 1, invertible: true },
  ],
  create: () => ({ kind: 'multiport', dir: 'any', ports: [], invert: false }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'multiport' }>;
    const pr = ctx.ip.proto;
    if (!pr || pr.invert || ![PROTO_TCP, PROTO_UDP, PROTO_UDPLITE, PROTO_SCTP, PROTO_DCCP].includes(pr.num)) {
      throw paramError('multiport needs `-p tcp\', `-p udp\', `-p udplite\', `-p sctp\' or `-p dccp\'');
    }
    if (t.ports.length) throw paramError('multiport can only have one option');
    t.dir = opt === '--sports' ? 'src' : opt === '--dports' ? 'dst' : 'any';
    t.invert = invert;
    let count = 0;
    for (const p of args[0]!.split(',')) {
      if (p === '') throw paramError(`invalid port/service \`' specified`);
      // multiport's own rule: a range needs both ends, the first below the second
      const colon = p.indexOf(':');
      const r: Range = colon < 0 ? [parsePort(p, ctx), parsePort(p, ctx)] : [parsePort(p.slice(0, colon), ctx), parsePort(p.slice(colon + 1), ctx)];
      if (colon >= 0 && r[0] >= r[1]) throw paramError('invalid portrange specified');
      count += p.includes(':') ? 2 : 1;
      t.ports.push(r);
    }
    if (count > 15) throw paramError('too many ports specified');
  },
  finish(m) {
    if ((m as Extract<Match, { kind: 'multiport' }>).ports.length === 0) {
      throw paramError('multiport expection an option (--sports, --dports or --ports)');
    }
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'multiport' }>;
    const opt = t.dir === 'src' ? '--sports' : t.dir === 'dst' ? '--dports' : '--ports';
    return ` ${bang(t.invert)}${opt} ${t.ports.map(fmtRange).join(',')}`;
  },
};

/** iptables-save's quoting of a string argument (comment text). */
export function saveString(s: string): string {
  if (s !== '' && !/[\s"'\\]/.test(s)) return s;
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const comment: MatchModule = {
  name: 'comment',
  options: [{ name: '--comment', args: 1, invertible: false }],
  create: () => ({ kind: 'comment', text: '' }),
  parse(m, _o, args) {
    if (args[0]!.length > 255) throw paramError('comment may not exceed 255 characters');
    (m as Extract<Match, { kind: 'comment' }>).text = args[0]!;
  },
  finish(_m, seen) { if (!seen.has('--comment')) throw paramError('COMMENT match: You must specify `--comment\''); },
  save: (m) => ` --comment ${saveString((m as Extract<Match, { kind: 'comment' }>).text)}`,
};

const CT_UNSUPPORTED = ['--ctproto', '--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst', '--ctorigsrcport',
  '--ctorigdstport', '--ctreplsrcport', '--ctrepldstport', '--ctstatus', '--ctexpire', '--ctdir'];
const conntrack: MatchModule = {
  name: 'conntrack',
  options: [
    { name: '--ctstate', args: 1, invertible: true },
    ...CT_UNSUPPORTED.map((name) => ({ name, args: 1, invertible: true, unsupported: true })),
  ],
  create: () => ({ kind: 'conntrack', ctstate: [], invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'conntrack' }>;
    t.ctstate = parseStates(args[0]!, CT_STATES);
    t.invert = invert;
  },
  finish(_m, seen) { if (seen.size === 0) throw paramError('conntrack: At least one option is required'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'conntrack' }>;
    return ` ${bang(t.invert)}--ctstate ${t.ctstate.join(',')}`;
  },
};

const state: MatchModule = {
  name: 'state',
  options: [{ name: '--state', args: 1, invertible: true }],
  create: () => ({ kind: 'state', states: [], invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'state' }>;
    try {
      t.states = parseStates(args[0]!, CT_STATES);
    } catch { throw paramError(`Bad state "${args[0]}"`); }
    t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--state')) throw paramError('state match: You must specify "--state"'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'state' }>;
    return ` ${bang(t.invert)}--state ${t.states.join(',')}`;
  },
};

function parseIpRange(text: string, opt: string, invert: boolean, family: Family): IpRange | Ip6Range {
  const i = text.indexOf('-');
  if (family === 6) {
    const a = parseIpv6(i < 0 ? text : text.slice(0, i));
    const b = i < 0 ? a : parseIpv6(text.slice(i + 1));
    if (a === undefined || b === undefined) throw paramError(`iprange: Bad value for "${opt}" option: "${i < 0 ? text : a === undefined ? text.slice(0, i) : text.slice(i + 1)}"`);
    return { from6: a, to6: b, invert };
  }
  const a = parseIpv4(i < 0 ? text : text.slice(0, i));
  const b = i < 0 ? a : parseIpv4(text.slice(i + 1));
  if (a === undefined || b === undefined) throw paramError(`iprange: invalid address range \`${text}'`);
  return { from: a, to: b, invert };
}
function fmtIpRange(r: IpRange | Ip6Range): string {
  return isRange6(r) ? `${fmtIpv6(r.from6)}-${fmtIpv6(r.to6)}` : `${fmtIpv4(r.from)}-${fmtIpv4(r.to)}`;
}
export { fmtIpRange };
const iprange: MatchModule = {
  name: 'iprange',
  options: [{ name: '--src-range', args: 1, invertible: true }, { name: '--dst-range', args: 1, invertible: true }],
  create: () => ({ kind: 'iprange' }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'iprange' }>;
    const r = parseIpRange(args[0]!, opt, invert, ctx.family);
    if (opt === '--src-range') t.src = r; else t.dst = r;
  },
  finish(_m, seen) { if (seen.size === 0) throw paramError('iprange match: You must specify `--src-range\' or `--dst-range\''); },
  save(m) {
    const t = m as Extract<Match, { kind: 'iprange' }>;
    let s = '';
    if (t.src) s += ` ${bang(t.src.invert)}--src-range ${fmtIpRange(t.src)}`;
    if (t.dst) s += ` ${bang(t.dst.invert)}--dst-range ${fmtIpRange(t.dst)}`;
    return s;
  },
};

const length: MatchModule = {
  name: 'length',
  options: [{ name: '--length', args: 1, invertible: true }],
  create: () => ({ kind: 'length', min: 0, max: 65535, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'length' }>;
    const text = args[0]!;
    const i = text.indexOf(':');
    const num = (s: string): number => parseUint(s, 65535, 'length');
    try {
      if (i < 0) { t.min = t.max = num(text); } else {
        t.min = i === 0 ? 0 : num(text.slice(0, i));
        t.max = i === text.length - 1 ? 65535 : num(text.slice(i + 1));
      }
    } catch { throw paramError(`length: Bad value for "--length" option: "${text}"`); }
    if (t.min > t.max) throw paramError(`length: Bad value for "--length" option: "${text}"`);
    t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--length')) throw paramError('length: "--length" option is required'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'length' }>;
    return ` ${bang(t.invert)}--length ${t.min === t.max ? t.min : `${t.min}:${t.max}`}`;
  },
};

const ttl: MatchModule = {
  name: 'ttl',
  family: 4,
  options: [
    { name: '--ttl-eq', aliases: ['--ttl'], args: 1, invertible: true },
    { name: '--ttl-lt', args: 1, invertible: false },
    { name: '--ttl-gt', args: 1, invertible: false },
  ],
  create: () => ({ kind: 'ttl', op: 'eq', value: 0, invert: false }),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'ttl' }>;
    try { t.value = parseUint(args[0]!, 255, 'TTL'); } catch { throw paramError(`ttl: Bad value for "${opt}" option: "${args[0]}"`); }
    t.op = opt === '--ttl-lt' ? 'lt' : opt === '--ttl-gt' ? 'gt' : 'eq';
    t.invert = invert;
  },
  finish(_m, seen) {
    if (seen.size === 0) throw paramError('ttl: One of `--ttl-eq\', `--ttl-lt\' or `--ttl-gt\' is required');
    if (seen.size > 1) throw paramError('ttl: Only one of `--ttl-eq\', `--ttl-lt\' or `--ttl-gt\' may be given');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'ttl' }>;
    return ` ${bang(t.invert)}--ttl-${t.op} ${t.value}`;
  },
};

const hl: MatchModule = {
  name: 'hl',
  family: 6,
  options: [
    { name: '--hl-eq', args: 1, invertible: true },
    { name: '--hl-lt', args: 1, invertible: false },
    { name: '--hl-gt', args: 1, invertible: false },
  ],
  create: () => ({ kind: 'hl', op: 'eq', value: 0, invert: false }),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'hl' }>;
    try { t.value = parseUint(args[0]!, 255, 'HL'); } catch { throw paramError(`hl: Bad value for "${opt}" option: "${args[0]}"`); }
    t.op = opt === '--hl-lt' ? 'lt' : opt === '--hl-gt' ? 'gt' : 'eq';
    t.invert = invert;
  },
  finish(_m, seen) {
    if (seen.size === 0) throw paramError('hl: One of `--hl-eq\', `--hl-lt\' or `--hl-gt\' is required');
    if (seen.size > 1) throw paramError('hl: Only one of `--hl-eq\', `--hl-lt\' or `--hl-gt\' may be given');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'hl' }>;
    return ` ${bang(t.invert)}--hl-${t.op} ${t.value}`;
  },
};

export const MATCH_MODULES: ReadonlyMap<string, MatchModule> = new Map(
  [tcpLike('tcp'), tcpLike('udp'), icmp, icmp6, multiport, comment, conntrack, state, iprange, length, ttl, hl].map((m) => [m.name, m]),
);

/** Match modules iptables has that bpftables does not implement yet (clear error, not "unknown"). */
export const KNOWN_UNSUPPORTED_MATCHES = new Set([
  'addrtype', 'ah', 'bpf', 'cgroup', 'cluster', 'connbytes', 'connlabel', 'connlimit', 'connmark', 'cpu', 'dccp',
  'devgroup', 'dscp', 'ecn', 'esp', 'hashlimit', 'helper', 'ipcomp', 'ipv6header', 'ipvs', 'limit',
  'mac', 'mark', 'mh', 'nfacct', 'osf', 'owner', 'physdev', 'pkttype', 'policy', 'quota', 'rateest', 'realm',
  'recent', 'rpfilter', 'rt', 'sctp', 'set', 'socket', 'statistic', 'string', 'tcpmss', 'time', 'tos', 'u32',
  'udplite', 'frag', 'hbh', 'dst', 'eui64', 'srh', 'ipv4options', 'geoip',
]);

export function moduleOf(m: Match): MatchModule {
  const mod = MATCH_MODULES.get(m.kind);
  if (!mod) throw new Error(`no module for match ${m.kind}`);
  return mod;
}
