/**
 * Match extensions: how each parses its options (iptables syntax) into the
 * IR and how it prints back in iptables-save's canonical form. One table,
 * keyed by module name; the rule parser and the printer both use it.
 */
import { BpftablesError, kernelInvalid, paramError } from './errors';
import { fmtIpv4, fmtIpv6, maskBits6, parseIpv4, parseIpv6, prefixMask6 } from './addr';

export { fmtIpv4, parseIpv4 };
import { type AddrMatch, commandName, CT_MATCH_STATES, CT_STATES, CT_STATUS_BITS, type Family, isAddr6, type Ip6Range, type IpPart, type IpRange, isRange6, type Match, type OwnerRange, type Range, TCP_FLAGS } from './ir';
import { ICMP_TYPES, ICMP6_TYPES, type NameDb, parseUintAny, protoNumber } from './names';

export interface OptionSpec {
  name: string; args: number; invertible: boolean; aliases?: string[]; unsupported?: boolean;
  /** the name iptables uses for the option in its messages, when not `name` */
  canonical?: string;
}

export interface ParseCtx { db: NameDb; ip: IpPart; family: Family }

export interface MatchModule {
  name: string;
  options: OptionSpec[];
  /** protocol the match requires (-p), if any */
  protos?: number[];
  /** the one family the extension exists for (libipt_* / libip6t_*); absent: both (libxt_*) */
  family?: Family;
  /** the extension words a repeated option the old way ("Only one `--x' allowed") */
  oldStyleMessages?: boolean;
  create(): Match;
  parse(m: Match, opt: string, args: string[], invert: boolean, ctx: ParseCtx): void;
  /** called once all options are seen; throws on missing required options */
  finish(m: Match, seen: Set<string>, ctx: ParseCtx): void;
  save(m: Match, db: NameDb): string;
}

const PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ICMP = 1, PROTO_ICMPV6 = 58, PROTO_UDPLITE = 136, PROTO_SCTP = 132, PROTO_DCCP = 33;

/** A number as iptables reads it (strtoul, base 0: decimal, 0x hex, 0 octal), at most `max`. */
export function parseUint(text: string, max: number, what: string): number {
  const n = parseUintAny(text, max);
  if (n === undefined) throw paramError(`invalid ${what} \`${text}' specified`);
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

function parseStates<T extends string>(text: string, allowed: readonly T[]): T[] {
  const out = new Set<string>();
  for (const s of text.split(',')) {
    const u = s.toUpperCase();
    if (!(allowed as readonly string[]).includes(u)) throw paramError(`Bad ctstate "${s}"`);
    out.add(u);
  }
  return allowed.filter((s) => out.has(s));
}

function parseCtStatus(text: string): number {
  let mask = 0;
  for (const s of text.split(',')) {
    const u = s.toUpperCase();
    const bit = u === 'NONE' ? 0 : CT_STATUS_BITS.find(([n]) => n === u)?.[1];
    if (bit === undefined) throw paramError(`Bad ctstatus "${s}"`);
    mask |= bit;
  }
  return mask;
}
export function fmtCtStatus(mask: number): string {
  return mask === 0 ? 'NONE' : CT_STATUS_BITS.filter(([, b]) => mask & b).map(([n]) => n).join(',');
}

const tcpLike = (proto: 'tcp' | 'udp'): MatchModule => ({
  name: proto,
  oldStyleMessages: proto === 'tcp',
  protos: [proto === 'tcp' ? PROTO_TCP : PROTO_UDP],
  options: [
    { name: '--sport', aliases: ['--source-port'], canonical: '--source-port', args: 1, invertible: true },
    { name: '--dport', aliases: ['--destination-port'], canonical: '--destination-port', args: 1, invertible: true },
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
    if (seen.has('--syn') && seen.has('--tcp-flags')) throw paramError('Only one of `--syn\' or `--tcp-flags\'  allowed');
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

/** a number as parseUint takes it (hex or digits; parseUint refuses what is not base-0 C) */
const UINT = '(0[xX][0-9a-fA-F]+|\\d+)';
/** `type[/code[:code]]` and `type[/code]` by number */
const ICMP_TYPE_CODES = new RegExp(`^${UINT}(?:/${UINT}(?::${UINT})?)?$`);
const ICMP6_TYPE_CODE = new RegExp(`^${UINT}(?:/${UINT})?$`);

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
      const mm = ICMP_TYPE_CODES.exec(text);
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
      const mm = ICMP6_TYPE_CODE.exec(text);
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
    { name: '--sports', aliases: ['--source-ports'], canonical: '--source-ports', args: 1, invertible: true },
    { name: '--dports', aliases: ['--destination-ports'], canonical: '--destination-ports', args: 1, invertible: true },
    { name: '--ports', args: 1, invertible: true },
  ],
  create: () => ({ kind: 'multiport', dir: 'any', ports: [], invert: false }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'multiport' }>;
    const pr = ctx.ip.proto;
    if (!pr || pr.invert || ![PROTO_TCP, PROTO_UDP, PROTO_UDPLITE, PROTO_SCTP, PROTO_DCCP].includes(pr.num)) {
      throw paramError('multiport needs `-p tcp\', `-p udp\', `-p udplite\', `-p sctp\' or `-p dccp\'');
    }
    const canon = (o: string): string => (o === '--sports' ? '--source-ports' : o === '--dports' ? '--destination-ports' : o);
    const before = t.ports.length ? (t.dir === 'src' ? '--sports' : t.dir === 'dst' ? '--dports' : '--ports') : undefined;
    if (before) throw paramError(`multiport: option "${canon(opt)}" cannot be used together with "${canon(before)}".\n`);
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

/**
 * An address literal with an optional /prefix or /mask, of the rule's family
 * (conntrack tuples). Kept as given, not masked: iptables stores and prints
 * it that way, and the kernel masks both sides when comparing.
 */
function parseCtAddr(text: string, family: Family, invert: boolean): AddrMatch {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const m = slash < 0 ? undefined : text.slice(slash + 1);
  if (family === 6) {
    const a = parseIpv6(host);
    if (!a) throw paramError(`host/network \`${host}' not found`);
    let mask = prefixMask6(128);
    if (m !== undefined) {
      const mm = /^\d+$/.test(m) && Number(m) <= 128 ? prefixMask6(Number(m)) : parseIpv6(m);
      if (!mm) throw paramError(`invalid mask \`${m}' specified`);
      mask = mm;
    }
    return { addr6: a, mask6: mask, invert };
  }
  const a = parseIpv4(host);
  if (a === undefined) throw paramError(`host/network \`${host}' not found`);
  let mask = 0xffffffff;
  if (m !== undefined) {
    const mm = /^\d+$/.test(m) && Number(m) <= 32 ? (Number(m) === 0 ? 0 : (0xffffffff << (32 - Number(m))) >>> 0) : parseIpv4(m);
    if (mm === undefined) throw paramError(`invalid mask \`${m}' specified`);
    mask = mm;
  }
  return { addr: a, mask, invert };
}

/** As conntrack prints an address: no mask for a single host, a prefix length or a dotted mask otherwise. */
export function fmtCtAddr(a: AddrMatch): string {
  if (isAddr6(a)) {
    const bits = maskBits6(a.mask6);
    return `${fmtIpv6(a.addr6)}${bits === 128 ? '' : `/${bits ?? fmtIpv6(a.mask6)}`}`;
  }
  const bits = maskBitsV4(a.mask);
  return `${fmtIpv4(a.addr)}${bits === 32 ? '' : `/${bits ?? fmtIpv4(a.mask)}`}`;
}
function maskBitsV4(mask: number): number | undefined {
  for (let b = 0; b <= 32; b++) if ((b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0) === mask) return b;
  return undefined;
}

/** "a", "a:b", ":b", "a:", ":" with a <= b (conntrack's port ranges). */
function parseCtPorts(text: string, ctx: ParseCtx): Range {
  const r = parsePortRange(text === ':' ? '0:65535' : text, ctx);
  return r;
}

const CT_ADDR_OPTS = ['--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst'] as const;
const CT_PORT_OPTS = ['--ctorigsrcport', '--ctorigdstport', '--ctreplsrcport', '--ctrepldstport'] as const;
const conntrack: MatchModule = {
  name: 'conntrack',
  options: [
    { name: '--ctstate', args: 1, invertible: true },
    { name: '--ctproto', args: 1, invertible: true },
    ...CT_ADDR_OPTS.map((name) => ({ name, args: 1, invertible: true })),
    ...CT_PORT_OPTS.map((name) => ({ name, args: 1, invertible: true })),
    { name: '--ctstatus', args: 1, invertible: true },
    { name: '--ctexpire', args: 1, invertible: true },
    { name: '--ctdir', args: 1, invertible: false },
  ],
  create: () => ({ kind: 'conntrack', ctstate: [], invert: false }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'conntrack' }>;
    if (opt === '--ctstatus') { t.status = { mask: parseCtStatus(args[0]!), invert }; return; }
    if (opt === '--ctproto') {
      const num = protoNumber(args[0]!, ctx.db);
      if (num === undefined) throw paramError(`unknown protocol "${args[0]}" specified`);
      if (num === 0) throw paramError('conntrack: --ctproto 0 is not allowed');
      t.proto = { num, invert };
      return;
    }
    if ((CT_ADDR_OPTS as readonly string[]).includes(opt)) {
      t[opt.slice(4) as 'origsrc'] = parseCtAddr(args[0]!, ctx.family, invert);
      return;
    }
    if ((CT_PORT_OPTS as readonly string[]).includes(opt)) {
      t[opt.slice(4) as 'origsrcport'] = { range: parseCtPorts(args[0]!, ctx), invert };
      return;
    }
    if (opt === '--ctexpire') {
      const [lo, hi, extra] = args[0]!.split(':');
      const min = parseUintAny(lo ?? '', 0xffffffff);
      const max = hi === undefined ? min : parseUintAny(hi, 0xffffffff);
      if (min === undefined || max === undefined || extra !== undefined || min > max) throw paramError(`conntrack: bad value for option "--ctexpire", or out of range (0-4294967295).\n`);
      t.expire = { min, max, invert };
      return;
    }
    if (opt === '--ctdir') {
      const d = args[0]!.toUpperCase();
      if (d !== 'ORIGINAL' && d !== 'REPLY') throw paramError(`conntrack: Bad value for "--ctdir" option: "${args[0]}"`);
      t.dir = d;
      return;
    }
    t.ctstate = parseStates(args[0]!, CT_MATCH_STATES);
    t.invert = invert;
  },
  finish(_m, seen) { if (seen.size === 0) throw paramError('conntrack: At least one option is required'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'conntrack' }>;
    let s = t.ctstate.length ? ` ${bang(t.invert)}--ctstate ${t.ctstate.join(',')}` : '';
    if (t.proto) s += ` ${bang(t.proto.invert)}--ctproto ${t.proto.num}`;
    for (const k of ['origsrc', 'origdst', 'replsrc', 'repldst'] as const) {
      const a = t[k];
      if (a) s += ` ${bang(a.invert)}--ct${k} ${fmtCtAddr(a)}`;
    }
    for (const k of ['origsrcport', 'origdstport', 'replsrcport', 'repldstport'] as const) {
      const p = t[k];
      if (p) s += ` ${bang(p.invert)}--ct${k} ${fmtRange(p.range)}`;
    }
    if (t.status) s += ` ${bang(t.status.invert)}--ctstatus ${fmtCtStatus(t.status.mask)}`;
    if (t.expire) s += ` ${bang(t.expire.invert)}--ctexpire ${t.expire.min === t.expire.max ? t.expire.min : `${t.expire.min}:${t.expire.max}`}`;
    if (t.dir) s += ` --ctdir ${t.dir}`;
    return s;
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

/** ttl (IPv4) and hl (IPv6): the same comparison of the TTL / hop limit, under their own names. */
const hopCount = (kind: 'ttl' | 'hl'): MatchModule => ({
  name: kind,
  family: kind === 'ttl' ? 4 : 6,
  options: [
    { name: `--${kind}-eq`, aliases: kind === 'ttl' ? ['--ttl'] : undefined, args: 1, invertible: true },
    { name: `--${kind}-lt`, args: 1, invertible: false },
    { name: `--${kind}-gt`, args: 1, invertible: false },
  ],
  create: () => ({ kind, op: 'eq', value: 0, invert: false } as Match),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'ttl' }>;
    try { t.value = parseUint(args[0]!, 255, kind.toUpperCase()); } catch { throw paramError(`${kind}: Bad value for "${opt}" option: "${args[0]}"`); }
    t.op = opt === `--${kind}-lt` ? 'lt' : opt === `--${kind}-gt` ? 'gt' : 'eq';
    t.invert = invert;
  },
  finish(_m, seen) {
    const names = `\`--${kind}-eq', \`--${kind}-lt' or \`--${kind}-gt'`;
    if (seen.size === 0) throw paramError(`${kind}: One of ${names} is required`);
    if (seen.size > 1) throw paramError(`${kind}: Only one of ${names} may be given`);
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'ttl' }>;
    return ` ${bang(t.invert)}--${kind}-${t.op} ${t.value}`;
  },
});
const ttl = hopCount('ttl');
const hl = hopCount('hl');

/** Built-in chains a match may be used from (the kernel refuses it elsewhere, reachable through jumps too). */
export const MATCH_HOOKS: Partial<Record<Match['kind'], readonly string[] | ((m: Match) => readonly string[] | undefined)>> = {
  mac: ['INPUT', 'FORWARD'],
  owner: ['OUTPUT'],
  // addrtype's interface limits: the input device where there is one, the output device likewise
  addrtype: (m) => {
    const t = m as Extract<Match, { kind: 'addrtype' }>;
    return t.limitIn ? ['INPUT', 'FORWARD'] : t.limitOut ? ['FORWARD', 'OUTPUT'] : undefined;
  },
};

const mac: MatchModule = {
  name: 'mac',
  options: [{ name: '--mac-source', args: 1, invertible: true }],
  create: () => ({ kind: 'mac', addr: [0, 0, 0, 0, 0, 0], invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'mac' }>;
    const parts = args[0]!.split(':');
    if (parts.length !== 6 || parts.some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) throw paramError('Invalid MAC address specified.');
    t.addr = parts.map((x) => parseInt(x, 16));
    t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--mac-source')) throw paramError('mac: option "--mac-source" must be specified\n'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'mac' }>;
    return ` ${bang(t.invert)}--mac-source ${fmtMac(t.addr)}`;
  },
};
export const fmtMac = (a: number[]): string => a.map((b) => b.toString(16).padStart(2, '0')).join(':');

const ecn: MatchModule = {
  name: 'ecn',
  options: [
    { name: '--ecn-tcp-cwr', args: 0, invertible: true }, { name: '--ecn-tcp-ece', args: 0, invertible: true },
    { name: '--ecn-ip-ect', args: 1, invertible: true },
  ],
  create: () => ({ kind: 'ecn' }),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'ecn' }>;
    if (opt === '--ecn-tcp-cwr') t.cwr = { invert };
    else if (opt === '--ecn-tcp-ece') t.ece = { invert };
    else {
      const v = parseUintAny(args[0]!, 3);
      if (v === undefined) throw paramError('ecn: bad value for option "--ecn-ip-ect", or out of range (0-3).\n');
      t.ect = { value: v, invert };
    }
  },
  finish(m, seen, ctx) {
    const t = m as Extract<Match, { kind: 'ecn' }>;
    if (seen.size === 0) throw paramError('ECN match: some option required');
    // the kernel refuses TCP bits on rules not limited to tcp
    if ((t.ece || t.cwr) && (ctx.ip.proto?.num !== PROTO_TCP || ctx.ip.proto.invert)) {
      throw kernelInvalid(commandName(ctx.family));
    }
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'ecn' }>;
    let s = '';
    if (t.ece) s += ` ${bang(t.ece.invert)}--ecn-tcp-ece`;
    if (t.cwr) s += ` ${bang(t.cwr.invert)}--ecn-tcp-cwr`;
    if (t.ect) s += ` ${bang(t.ect.invert)}--ecn-ip-ect ${t.ect.value}`;
    return s;
  },
};

/** "id", "id-id" or a name (user or group), as xt_owner takes them; ids up to 2^32-2. */
function ownerRange(text: string, opt: '--uid-owner' | '--gid-owner', ctx: ParseCtx, invert: boolean): OwnerRange {
  const bad = (): BpftablesError => paramError(`owner: Bad value for "${opt}" option: "${text}"`);
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (m) {
    const min = Number(m[1]), max = m[2] === undefined ? min : Number(m[2]);
    if (min > 0xfffffffe || max > 0xfffffffe) throw bad();
    return { min, max, invert };
  }
  const id = opt === '--uid-owner' ? ctx.db.userId?.(text) : ctx.db.groupId?.(text);
  if (id === undefined) throw bad();
  return { min: id, max: id, invert };
}

const owner: MatchModule = {
  name: 'owner',
  options: [
    { name: '--uid-owner', args: 1, invertible: true }, { name: '--gid-owner', args: 1, invertible: true },
    { name: '--socket-exists', args: 0, invertible: true }, { name: '--suppl-groups', args: 0, invertible: false, unsupported: true },
  ],
  create: () => ({ kind: 'owner' }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'owner' }>;
    if (opt === '--uid-owner') t.uid = ownerRange(args[0]!, opt, ctx, invert);
    else if (opt === '--gid-owner') t.gid = ownerRange(args[0]!, opt, ctx, invert);
    else t.socketExists = { invert };
  },
  finish(m, seen, ctx) {
    const t = m as Extract<Match, { kind: 'owner' }>;
    if (seen.size === 0) throw paramError('owner: At least one of --uid-owner, --gid-owner or --socket-exists is required');
    // the kernel refuses reversed ranges
    if ((t.uid && t.uid.min > t.uid.max) || (t.gid && t.gid.min > t.gid.max)) throw kernelInvalid(commandName(ctx.family));
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'owner' }>;
    const range = (r: OwnerRange): string => (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`);
    let s = '';
    if (t.socketExists) s += ` ${bang(t.socketExists.invert)}--socket-exists`;
    if (t.uid) s += ` ${bang(t.uid.invert)}--uid-owner ${range(t.uid)}`;
    if (t.gid) s += ` ${bang(t.gid.invert)}--gid-owner ${range(t.gid)}`;
    return s;
  },
};

const setMatch: MatchModule = {
  name: 'set',
  options: [
    { name: '--match-set', args: 2, invertible: true }, { name: '--return-nomatch', args: 0, invertible: false, unsupported: true },
    { name: '--update-counters', args: 0, invertible: true, unsupported: true }, { name: '--update-subcounters', args: 0, invertible: true, unsupported: true },
    { name: '--packets-eq', args: 1, invertible: true, unsupported: true }, { name: '--packets-lt', args: 1, invertible: false, unsupported: true },
    { name: '--packets-gt', args: 1, invertible: false, unsupported: true }, { name: '--bytes-eq', args: 1, invertible: true, unsupported: true },
    { name: '--bytes-lt', args: 1, invertible: false, unsupported: true }, { name: '--bytes-gt', args: 1, invertible: false, unsupported: true },
  ],
  create: () => ({ kind: 'set', name: '', dirs: [], invert: false, setType: '', setFamily: 4 }),
  parse(m, _o, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'set' }>;
    const [name, flags] = args as [string, string];
    const dirs = flags.split(',');
    if (dirs.some((d) => d !== 'src' && d !== 'dst') || dirs.length > 6) throw paramError("You must spefify (the comma separated list of) 'src' or 'dst'.");
    const info = ctx.db.ipset?.(name);
    if (!info) throw paramError(`Set ${name} doesn't exist.\n`);
    if (info.family !== ctx.family) {
      throw paramError(`The protocol family of set ${name} is ${info.family === 6 ? 'IPv6' : 'IPv4'}, which is not applicable.\n`);
    }
    Object.assign(t, { name, dirs, invert, setType: info.type, setFamily: info.family });
  },
  finish(_m, seen) { if (!seen.has('--match-set')) throw paramError('You must specify `--match-set\' with proper arguments'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'set' }>;
    return ` ${bang(t.invert)}--match-set ${t.name} ${t.dirs.join(',')}`;
  },
};

/** Timestamps one recent entry keeps (the kernel keeps ip_pkt_list_tot = 20 rounded up to a power of two). */
export const RECENT_STAMPS = 32;
const RECENT_CMDS = ['--set', '--rcheck', '--update', '--remove'] as const;
const recent: MatchModule = {
  name: 'recent',
  options: [
    ...RECENT_CMDS.map((name) => ({ name, args: 0, invertible: true })),
    { name: '--name', args: 1, invertible: false }, { name: '--seconds', args: 1, invertible: false },
    { name: '--reap', args: 0, invertible: false, unsupported: true }, { name: '--hitcount', args: 1, invertible: false },
    { name: '--rttl', args: 0, invertible: false }, { name: '--rsource', args: 0, invertible: false }, { name: '--rdest', args: 0, invertible: false },
    { name: '--mask', args: 1, invertible: false },
  ],
  create: () => ({ kind: 'recent', name: 'DEFAULT', cmd: 'set', seconds: 0, hitcount: 0, rttl: false, side: 'source', mask: [], invert: false }),
  parse(m, opt, args, invert, ctx) {
    const t = m as Extract<Match, { kind: 'recent' }>;
    const num = (): number => {
      const v = parseUintAny(args[0]!, 0xffffffff);
      if (v === undefined) throw paramError(`recent: bad value for option "${opt}", or out of range (0-4294967295).\n`);
      return v;
    };
    if ((RECENT_CMDS as readonly string[]).includes(opt)) { t.cmd = opt.slice(2) as typeof t.cmd; t.invert = invert; return; }
    switch (opt) {
      case '--name':
        if (!args[0] || args[0].length > 199) throw paramError('recent: bad value for option "--name"');
        t.name = args[0];
        break;
      case '--seconds': t.seconds = num(); break;
      case '--hitcount': t.hitcount = num(); break;
      case '--rttl': t.rttl = true; break;
      case '--rsource': t.side = 'source'; break;
      case '--rdest': t.side = 'dest'; break;
      case '--mask': {
        const a = ctx.family === 6 ? parseIpv6(args[0]!) : parseIpv4(args[0]!);
        if (a === undefined) throw paramError(`recent: bad value for option "--mask"`);
        t.mask = typeof a === 'number' ? [a] : a;
        break;
      }
    }
  },
  finish(m, seen, ctx) {
    const t = m as Extract<Match, { kind: 'recent' }>;
    const cmds = RECENT_CMDS.filter((c) => seen.has(c));
    if (cmds.length === 0) throw paramError("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    if (cmds.length > 1) throw paramError(`recent: option "${cmds[0]}" cannot be used together with "${cmds[1]}".\n`);
    if (t.rttl && (t.cmd === 'set' || t.cmd === 'remove')) throw paramError(`recent: option "--rttl" cannot be used together with "--${t.cmd}".\n`);
    if (!t.mask.length) t.mask = ctx.family === 6 ? [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff] : [0xffffffff];
    // what the kernel refuses
    if ((t.cmd === 'set' || t.cmd === 'remove') && (t.seconds || t.hitcount || t.rttl)) throw kernelInvalid(commandName(ctx.family));
    if (t.hitcount >= 256) throw kernelInvalid(commandName(ctx.family));
    if (t.hitcount > RECENT_STAMPS) throw new BpftablesError(`recent: --hitcount ${t.hitcount} is not supported by bpftables yet (at most ${RECENT_STAMPS})`, 2, {}, '--hitcount', true);
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'recent' }>;
    let s = ` ${bang(t.invert)}--${t.cmd}`;
    if (t.seconds) s += ` --seconds ${t.seconds}`;
    if (t.hitcount) s += ` --hitcount ${t.hitcount}`;
    if (t.rttl) s += ' --rttl';
    s += ` --name ${t.name} --mask ${recentMaskText(t.mask)} --${t.side === 'dest' ? 'rdest' : 'rsource'}`;
    return s;
  },
};
export const recentMaskText = (mask: number[]): string => (mask.length === 1 ? fmtIpv4(mask[0]!) : fmtIpv6(mask));

/** Route types as addrtype names them, in bit order (XT_ADDRTYPE_x = 1 << RTN_x). */
export const ADDR_TYPES = ['UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE'];
export const fmtAddrTypes = (bits: number): string => ADDR_TYPES.filter((_, i) => bits & (1 << i)).join(',');
const addrtype: MatchModule = {
  name: 'addrtype',
  options: [
    { name: '--src-type', args: 1, invertible: true }, { name: '--dst-type', args: 1, invertible: true },
    { name: '--limit-iface-in', args: 0, invertible: false }, { name: '--limit-iface-out', args: 0, invertible: false },
  ],
  create: () => ({ kind: 'addrtype', limitIn: false, limitOut: false }),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'addrtype' }>;
    if (opt === '--limit-iface-in') { t.limitIn = true; return; }
    if (opt === '--limit-iface-out') { t.limitOut = true; return; }
    let types = 0;
    for (const name of args[0]!.split(',')) {
      const i = ADDR_TYPES.indexOf(name.toUpperCase());
      if (i < 0) throw paramError(`addrtype: bad type "${name}"`);
      types |= 1 << i;
    }
    if (opt === '--src-type') t.src = { types, invert }; else t.dst = { types, invert };
  },
  finish(m, _seen, ctx) {
    const t = m as Extract<Match, { kind: 'addrtype' }>;
    if (!t.src && !t.dst) throw paramError('addrtype: you must specify --src-type or --dst-type');
    if (t.limitIn && t.limitOut) throw paramError('addrtype: option "--limit-iface-in" cannot be used together with "--limit-iface-out".\n');
    // the kernel's IPv6 lookup knows no BROADCAST, BLACKHOLE, PROHIBIT, THROW, NAT or XRESOLVE (EINVAL)
    const v6Refused = (1 << ADDR_TYPES.indexOf('BROADCAST')) | (1 << ADDR_TYPES.indexOf('BLACKHOLE'));
    const types = (t.src?.types ?? 0) | (t.dst?.types ?? 0);
    if (ctx.family === 6 && ((types & v6Refused) !== 0 || types >= 1 << ADDR_TYPES.indexOf('PROHIBIT'))) throw kernelInvalid(commandName(ctx.family));
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'addrtype' }>;
    let s = '';
    if (t.src) s += ` ${bang(t.src.invert)}--src-type ${fmtAddrTypes(t.src.types)}`;
    if (t.dst) s += ` ${bang(t.dst.invert)}--dst-type ${fmtAddrTypes(t.dst.types)}`;
    if (t.limitIn) s += ' --limit-iface-in';
    if (t.limitOut) s += ' --limit-iface-out';
    return s;
  },
};

const tcpmss: MatchModule = {
  name: 'tcpmss',
  options: [{ name: '--mss', args: 1, invertible: true }],
  create: () => ({ kind: 'tcpmss', min: 0, max: 65535, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'tcpmss' }>;
    const text = args[0]!;
    const colon = text.indexOf(':');
    const num = (s: string, dflt: number): number => {
      if (s === '') return dflt;
      const v = /^\d+$/.test(s) ? Number(s) : undefined;
      if (v === undefined || v > 65535) throw paramError(`tcpmss: bad value for option "--mss" near "${s}", or out of range (0-65535).\n`);
      return v;
    };
    t.min = num(colon < 0 ? text : text.slice(0, colon), 0);
    t.max = colon < 0 ? (text === '' ? 65535 : t.min) : num(text.slice(colon + 1), 65535);
    if (t.min > t.max) throw paramError('tcpmss: invalid range given');
    t.invert = invert;
  },
  finish(_m, seen, ctx) {
    if (!seen.has('--mss')) throw paramError('tcpmss: option "--mss" must be specified\n');
    // the kernel's tcpmss match only takes rules limited to tcp
    if (ctx.ip.proto?.num !== PROTO_TCP || ctx.ip.proto.invert) throw kernelInvalid(commandName(ctx.family));
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'tcpmss' }>;
    return ` ${bang(t.invert)}--mss ${t.min === t.max ? t.min : `${t.min}:${t.max}`}`;
  },
};

const hex = (v: number, width = 0): string => `0x${v.toString(16).padStart(width, '0')}`;


/** "value[/mask]" as the mark and tos matches take it; the mask defaults to all ones. */
function valueMask(text: string, max: number, what: string): { value: number; mask: number; masked: boolean } {
  const [v, m, extra] = text.split('/');
  const value = parseUintAny(v ?? '', max);
  const mask = m === undefined ? max : parseUintAny(m, max);
  if (value === undefined || mask === undefined || extra !== undefined) {
    throw paramError(what === 'tos' ? (m === undefined ? `Symbolic name "${text}" is unknown` : `Illegal value: "${text}"`)
      : `${what}: bad integer value for option "--mark", or out of range.\n`);
  }
  return { value, mask, masked: m !== undefined };
}

const mark: MatchModule = {
  name: 'mark',
  options: [{ name: '--mark', args: 1, invertible: true }],
  create: () => ({ kind: 'mark', value: 0, mask: 0xffffffff, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'mark' }>;
    const vm = valueMask(args[0]!, 0xffffffff, 'mark');
    t.value = vm.value; t.mask = vm.mask; t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--mark')) throw paramError('mark: option "--mark" must be specified\n'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'mark' }>;
    return ` ${bang(t.invert)}--mark ${hex(t.value)}${t.mask === 0xffffffff ? '' : `/${hex(t.mask)}`}`;
  },
};

const connmark: MatchModule = {
  name: 'connmark',
  options: [{ name: '--mark', args: 1, invertible: true }],
  create: () => ({ kind: 'connmark', value: 0, mask: 0xffffffff, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'connmark' }>;
    const vm = valueMask(args[0]!, 0xffffffff, 'connmark');
    t.value = vm.value; t.mask = vm.mask; t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--mark')) throw paramError('connmark: option "--mark" must be specified\n'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'connmark' }>;
    return ` ${bang(t.invert)}--mark ${hex(t.value)}${t.mask === 0xffffffff ? '' : `/${hex(t.mask)}`}`;
  },
};

/** Packet types by name (pkttype), in iptables' order; "host" is unicast's other name. */
export const PKT_TYPES: ReadonlyArray<[string, number]> = [['unicast', 0], ['broadcast', 1], ['multicast', 2], ['otherhost', 3], ['host', 0]];
const pkttype: MatchModule = {
  name: 'pkttype',
  options: [{ name: '--pkt-type', args: 1, invertible: true }],
  create: () => ({ kind: 'pkttype', type: 0, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'pkttype' }>;
    const found = PKT_TYPES.find(([n]) => n === args[0]!.toLowerCase());
    if (!found) throw paramError(`Bad packet type '${args[0]}'`);
    t.type = found[1]; t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--pkt-type')) throw paramError('pkttype: option "--pkt-type" must be specified\n'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'pkttype' }>;
    return ` ${bang(t.invert)}--pkt-type ${PKT_TYPES.find(([, v]) => v === t.type)![0]}`;
  },
};

/** DiffServ class names and their DSCP values. */
export const DSCP_CLASSES: ReadonlyArray<[string, number]> = [
  ['CS0', 0x00], ['CS1', 0x08], ['CS2', 0x10], ['CS3', 0x18], ['CS4', 0x20], ['CS5', 0x28], ['CS6', 0x30], ['CS7', 0x38], ['BE', 0x00],
  ['AF11', 0x0a], ['AF12', 0x0c], ['AF13', 0x0e], ['AF21', 0x12], ['AF22', 0x14], ['AF23', 0x16], ['AF31', 0x1a], ['AF32', 0x1c],
  ['AF33', 0x1e], ['AF41', 0x22], ['AF42', 0x24], ['AF43', 0x26], ['EF', 0x2e],
];
const dscp: MatchModule = {
  name: 'dscp',
  options: [{ name: '--dscp', args: 1, invertible: true }, { name: '--dscp-class', args: 1, invertible: true }],
  create: () => ({ kind: 'dscp', value: 0, invert: false }),
  parse(m, opt, args, invert) {
    const t = m as Extract<Match, { kind: 'dscp' }>;
    if (opt === '--dscp') {
      const v = parseUintAny(args[0]!, 0x3f);
      if (v === undefined) throw paramError(`Invalid dscp \`${args[0]}'`);
      t.value = v;
    } else {
      const c = DSCP_CLASSES.find(([n]) => n === args[0]!.toUpperCase());
      if (!c) throw paramError(`Invalid DSCP value \`${args[0]}'`);
      t.value = c[1];
    }
    t.invert = invert;
  },
  finish(_m, seen) {
    if (seen.size === 0) throw paramError('DSCP match: Parameter --dscp is required');
    if (seen.size > 1) throw paramError('DSCP match: only use one of --dscp or --dscp-class');
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'dscp' }>;
    return ` ${bang(t.invert)}--dscp ${hex(t.value, 2)}`;
  },
};

/** The TOS names iptables knows (IPv4 TOS bits, compared under mask 0x3f). */
export const TOS_NAMES: ReadonlyArray<[string, number]> = [
  ['Minimize-Delay', 0x10], ['Maximize-Throughput', 0x08], ['Maximize-Reliability', 0x04], ['Minimize-Cost', 0x02], ['Normal-Service', 0x00],
];
const tos: MatchModule = {
  name: 'tos',
  options: [{ name: '--tos', args: 1, invertible: true }],
  create: () => ({ kind: 'tos', value: 0, mask: 0xff, invert: false }),
  parse(m, _o, args, invert) {
    const t = m as Extract<Match, { kind: 'tos' }>;
    const named = TOS_NAMES.find(([n]) => n.toLowerCase() === args[0]!.toLowerCase());
    if (named) { t.value = named[1]; t.mask = 0x3f; } else {
      const vm = valueMask(args[0]!, 0xff, 'tos');
      t.value = vm.value; t.mask = vm.mask;
    }
    t.invert = invert;
  },
  finish(_m, seen) { if (!seen.has('--tos')) throw paramError('tos: option "--tos" must be specified\n'); },
  save(m) {
    const t = m as Extract<Match, { kind: 'tos' }>;
    return ` ${bang(t.invert)}--tos ${hex(t.value, 2)}/${hex(t.mask, 2)}`;
  },
};

/** xt_limit's fixed-point scale: avg is in 1/10000 s. */
export const XT_LIMIT_SCALE = 10000;
/** xt_hashlimit's scale (revisions 2 and 3): avg is in 1/1000000 s. */
export const XT_HASHLIMIT_SCALE = 1000000;
const rateUnits = (scale: number): ReadonlyArray<[string, number]> => [['day', scale * 24 * 60 * 60], ['hour', scale * 60 * 60], ['min', scale * 60], ['sec', scale]];

/** "N/unit" (unit a prefix of second, minute, hour, day; seconds without one) → avg, as iptables computes it. */
function parseRate(text: string, scale = XT_LIMIT_SCALE): number {
  const slash = text.indexOf('/');
  let mult = 1;
  if (slash >= 0) {
    const u = text.slice(slash + 1).toLowerCase();
    const unit = u && ([['second', 1], ['minute', 60], ['hour', 3600], ['day', 86400]] as const).find(([n]) => n.startsWith(u));
    if (!unit) throw paramError(`bad rate "${text}"'`);
    mult = unit[1];
  }
  const m = /^\s*[+-]?\d+/.exec(slash >= 0 ? text.slice(0, slash) : text);
  const r = m ? Number(m[0]) >>> 0 : 0;
  if (!r) throw paramError(`bad rate "${text}"'`);
  const avg = Math.floor((scale * mult) / r);
  if (avg === 0) throw paramError(`Rate too fast "${text}"`);
  return avg;
}

/** iptables' rendering of an avg: the largest unit that divides it well. */
export function fmtRate(avg: number, scale = XT_LIMIT_SCALE): string {
  const units = rateUnits(scale);
  let i = 1;
  for (; i < units.length; i++) {
    const mult = units[i]![1];
    if (avg > mult || Math.floor(mult / avg) < mult % avg) break;
  }
  const [name, mult] = units[i - 1]!;
  return `${Math.floor(mult / avg)}/${name}`;
}

/** iptables' bytes-mode constants: costs count 16-byte chunks; entries live 15 s by default. */
export const XT_HASHLIMIT_BYTE_SHIFT = 4;
const XT_HASHLIMIT_BYTE_EXPIRE = 15;
const U32_MAX = 0xffffffff;

/** "Nb/s", "Nkb/s", "Nmb/s" → bytes per second (undefined: not a byte rate). */
function byteRate(text: string): number | undefined {
  const m = /^(\d+)([km]?)b\/s$/i.exec(text);
  if (!m || Number(m[1]) === 0) return undefined;
  return (Number(m[1]) * ({ '': 1, k: 1024, m: 1048576 } as Record<string, number>)[m[2]!.toLowerCase()]!) % 2 ** 32;
}
/** iptables' cost of a byte rate, and back. */
export const bytesToCost = (bytes: number): number => Math.floor(U32_MAX / (Math.floor(bytes / 2 ** XT_HASHLIMIT_BYTE_SHIFT) + 1));
export const costToBytes = (cost: number): number => ((cost ? Math.floor(U32_MAX / cost) : U32_MAX) - 1) * 2 ** XT_HASHLIMIT_BYTE_SHIFT;
const BYTE_UNITS: ReadonlyArray<[string, number]> = [['m', 1048576], ['k', 1024]];

/** The rate and burst as iptables prints them ("upto" rate, then " <prefix>burst ..."). */
export function hashlimitRateText(t: Extract<Match, { kind: 'hashlimit' }>, burstPrefix: string, perInterval = false): string {
  // iptables -L shows a packet rate per rate-interval
  const scaled = perInterval && t.interval ? t.avg * t.interval : t.avg;
  if (!t.bytes) return `${fmtRate(scaled, XT_HASHLIMIT_SCALE)} ${burstPrefix}burst ${t.burst}`;
  const r = costToBytes(t.avg);
  const unit = BYTE_UNITS.find(([, th]) => r >= th && bytesToCost(r - (r % th)) === t.avg);
  let s = `${Math.floor(r / (unit?.[1] ?? 1))}${unit?.[0] ?? ''}b/s`;
  if (t.burst) {
    const b = r * t.burst;
    const bu = BYTE_UNITS.find(([, th]) => b >= th);
    s += ` ${burstPrefix}burst ${Math.floor(b / (bu?.[1] ?? 1))}${bu?.[0] ?? ''}b`;
  }
  return s;
}

/** Seconds in the unit a rate was written with ("5/min": 60; no unit: seconds). */
function rateUnitSeconds(text: string): number {
  const slash = text.indexOf('/');
  if (slash < 0) return 1;
  const u = text.slice(slash + 1).toLowerCase();
  return ([['second', 1], ['minute', 60], ['hour', 3600], ['day', 86400]] as const).find(([n]) => n.startsWith(u))?.[1] ?? 1;
}

/** The htable-expire iptables leaves unprinted: the unit the rate is printed in (byte rates: 15 s), in ms. */
export function hashlimitDefaultExpire(avg: number, bytes = false): number {
  if (bytes) return XT_HASHLIMIT_BYTE_EXPIRE * 1000;
  const unit = fmtRate(avg, XT_HASHLIMIT_SCALE).split('/')[1]!;
  return ({ sec: 1, min: 60, hour: 3600, day: 86400 } as Record<string, number>)[unit]! * 1000;
}

const HASHLIMIT_MODES = ['srcip', 'srcport', 'dstip', 'dstport'] as const;
const hashlimit: MatchModule = {
  name: 'hashlimit',
  options: [
    { name: '--hashlimit-upto', args: 1, invertible: false, aliases: ['--hashlimit'] }, { name: '--hashlimit-above', args: 1, invertible: false },
    { name: '--hashlimit-burst', args: 1, invertible: false }, { name: '--hashlimit-mode', args: 1, invertible: false },
    { name: '--hashlimit-name', args: 1, invertible: false }, { name: '--hashlimit-srcmask', args: 1, invertible: false },
    { name: '--hashlimit-dstmask', args: 1, invertible: false }, { name: '--hashlimit-htable-size', args: 1, invertible: false },
    { name: '--hashlimit-htable-max', args: 1, invertible: false }, { name: '--hashlimit-htable-gcinterval', args: 1, invertible: false },
    { name: '--hashlimit-htable-expire', args: 1, invertible: false },
    { name: '--hashlimit-rate-match', args: 0, invertible: false }, { name: '--hashlimit-rate-interval', args: 1, invertible: false },
  ],
  // expire -1 until finish: without --hashlimit-htable-expire it is the rate's unit (iptables' default)
  create: () => ({ kind: 'hashlimit', family: 4, name: '', avg: 0, burst: 5, above: false, mode: [], srcmask: -1, dstmask: -1, gcinterval: 1000, expire: -1 }),
  parse(m, opt, args, _invert, ctx) {
    const t = m as Extract<Match, { kind: 'hashlimit' }>;
    const text = args[0]!;
    const bad = (): BpftablesError => paramError(`hashlimit: Bad value for "${opt}" option: "${text}"`);
    const u32 = (): number => { const v = parseUintAny(text, 0xffffffff); if (v === undefined) throw bad(); return v; };
    switch (opt) {
      case '--hashlimit-upto': case '--hashlimit-above': {
        const bytes = byteRate(text);
        if (bytes !== undefined) {
          t.avg = bytesToCost(bytes);
          t.bytes = true;
          (t as { unitMs?: number }).unitMs = XT_HASHLIMIT_BYTE_EXPIRE * 1000;
        } else {
          try { t.avg = parseRate(text, XT_HASHLIMIT_SCALE); } catch { throw bad(); }
          (t as { unitMs?: number }).unitMs = rateUnitSeconds(text) * 1000;
        }
        t.above = opt === '--hashlimit-above';
        break;
      }
      case '--hashlimit-burst': {
        // a number of packets, or of bytes with a unit (b, kb, mb) for byte rates
        const m = /^(\d+)([km]?b)$/i.exec(text);
        if (m) { (t as { burstBytes?: number }).burstBytes = Number(m[1]) * ({ b: 1, kb: 1024, mb: 1048576 } as Record<string, number>)[m[2]!.toLowerCase()]!; break; }
        const b = parseUintAny(text, 1000000);
        if (!b) throw paramError('bad value for option "--hashlimit-burst", or out of range (1-1000000).');
        t.burst = b;
        (t as { burstBytes?: number }).burstBytes = b;
        break;
      }
      case '--hashlimit-mode': {
        const modes = text.split(',');
        if (modes.some((x) => !(HASHLIMIT_MODES as readonly string[]).includes(x))) throw bad();
        t.mode = HASHLIMIT_MODES.filter((x) => modes.includes(x));
        break;
      }
      case '--hashlimit-name': t.name = text; break;
      case '--hashlimit-srcmask': case '--hashlimit-dstmask': {
        const v = u32();
        if (v > (ctx.family === 6 ? 128 : 32)) throw kernelInvalid(commandName(ctx.family));
        if (opt === '--hashlimit-srcmask') t.srcmask = v; else t.dstmask = v;
        break;
      }
      case '--hashlimit-htable-size': t.size = u32(); break;
      case '--hashlimit-htable-max': t.max = u32(); break;
      case '--hashlimit-htable-gcinterval': t.gcinterval = u32(); break;
      case '--hashlimit-htable-expire': t.expire = u32(); break;
      case '--hashlimit-rate-match': t.rateMatch = true; break;
      case '--hashlimit-rate-interval': {
        const v = u32();
        if (v === 0) throw bad();
        if (v !== 1) t.interval = v;
        break;
      }
    }
  },
  finish(m, seen, ctx) {
    const t = m as Extract<Match, { kind: 'hashlimit' }>;
    if (seen.has('--hashlimit-upto') && seen.has('--hashlimit-above')) {
      throw paramError('hashlimit: option "--hashlimit-upto" cannot be used together with "--hashlimit-above".\n');
    }
    if (!seen.has('--hashlimit-upto') && !seen.has('--hashlimit-above')) throw paramError('You have to specify --hashlimit');
    if (!seen.has('--hashlimit-name')) throw paramError('hashlimit: option "--hashlimit-name" must be specified\n');
    // an entry lives as long as the rate's unit unless told otherwise; so does a rate-match window
    const parsed = t as { unitMs?: number; burstBytes?: number };
    if (t.expire < 0) t.expire = parsed.unitMs ?? 1000;
    // a packet rate-match without an interval measures per unit of the rate written: iptables keeps the rate per
    // second and makes the unit the interval (1/day: 1/sec over 86400 s windows)
    const unitS = (parsed.unitMs ?? 1000) / 1000;
    if (t.rateMatch && !t.bytes && !seen.has('--hashlimit-rate-interval') && unitS !== 1) {
      t.interval = unitS;
      t.avg = Math.floor(t.avg / unitS);
    }
    if (t.bytes) {
      // a burst in bytes becomes how many whole rates it spans (rounded up); none given: 0
      if (seen.has('--hashlimit-burst')) {
        const per = costToBytes(t.avg);
        const b = parsed.burstBytes ?? 0;
        if (b < per) throw paramError(`burst cannot be smaller than ${per}b`);
        t.burst = Math.ceil(b / per);
      } else t.burst = 0;
    } else if (parsed.burstBytes !== undefined) t.burst = parsed.burstBytes; // a unit on a packet burst only scales the number
    delete parsed.unitMs;
    delete parsed.burstBytes;

    // what the kernel refuses at checkentry
    if (t.gcinterval === 0 || t.expire === 0) throw kernelInvalid(commandName(ctx.family));
    const full = ctx.family === 6 ? 128 : 32;
    t.family = ctx.family;
    if (t.srcmask < 0) t.srcmask = full;
    if (t.dstmask < 0) t.dstmask = full;
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'hashlimit' }>;
    let s = ` --hashlimit-${t.above ? 'above' : 'upto'} ${hashlimitRateText(t, '--hashlimit-')}`;
    if (t.mode.length) s += ` --hashlimit-mode ${t.mode.join(',')}`;
    s += ` --hashlimit-name ${t.name}`;
    if (t.size !== undefined) s += ` --hashlimit-htable-size ${t.size}`;
    if (t.max !== undefined) s += ` --hashlimit-htable-max ${t.max}`;
    if (t.gcinterval !== 1000) s += ` --hashlimit-htable-gcinterval ${t.gcinterval}`;
    if (t.expire !== hashlimitDefaultExpire(t.avg, t.bytes)) s += ` --hashlimit-htable-expire ${t.expire}`;
    s += hashlimitMasks(t, ' --hashlimit-');
    if (t.rateMatch) s += ` --hashlimit-rate-match${t.interval ? ` --hashlimit-rate-interval ${t.interval}` : ''}`;
    return s;
  },
};

/** srcmask/dstmask when not the full address (the family's length: 32, or 128 for ip6tables rules). */
export function hashlimitMasks(t: Extract<Match, { kind: 'hashlimit' }>, prefix: string): string {
  const full = t.family === 6 ? 128 : 32;
  let s = '';
  if (t.srcmask !== full) s += `${prefix}srcmask ${t.srcmask}`;
  if (t.dstmask !== full) s += `${prefix}dstmask ${t.dstmask}`;
  return s;
}


const limit: MatchModule = {
  name: 'limit',
  options: [{ name: '--limit', args: 1, invertible: false }, { name: '--limit-burst', args: 1, invertible: false }],
  create: () => ({ kind: 'limit', avg: Math.floor((XT_LIMIT_SCALE * 3600) / 3), burst: 5 }),
  parse(m, opt, args) {
    const t = m as Extract<Match, { kind: 'limit' }>;
    if (opt === '--limit') t.avg = parseRate(args[0]!);
    else {
      const b = parseUintAny(args[0]!, 10000);
      if (b === undefined) throw paramError('limit: bad value for option "--limit-burst", or out of range (0-10000).\n');
      t.burst = b;
    }
  },
  finish() { /* defaults: 3/hour, burst 5 */ },
  save(m) {
    const t = m as Extract<Match, { kind: 'limit' }>;
    return ` --limit ${fmtRate(t.avg)}${t.burst !== 5 ? ` --limit-burst ${t.burst}` : ''}`;
  },
};

const statistic: MatchModule = {
  name: 'statistic',
  options: [
    { name: '--mode', args: 1, invertible: false }, { name: '--probability', args: 1, invertible: true },
    { name: '--every', args: 1, invertible: true }, { name: '--packet', args: 1, invertible: false },
  ],
  create: () => ({ kind: 'statistic', mode: 'random', probability: 0, invert: false }),
  parse(m, opt, args, invert) {
    const t = m as Record<string, unknown>;
    switch (opt) {
      case '--mode':
        if (args[0] !== 'random' && args[0] !== 'nth') throw paramError(`Bad mode "${args[0]}"`);
        t.mode = args[0];
        break;
      case '--probability': {
        const p = /^\d*\.?\d+(e-?\d+)?$/.test(args[0]!) ? Number(args[0]) : NaN;
        if (!(p >= 0 && p <= 1)) throw paramError('statistic: --probability must be between 0 and 1');
        t.probability = Math.round(0x80000000 * p);
        t.invert = invert;
        break;
      }
      case '--every': {
        const e = parseUintAny(args[0]!, 0xffffffff);
        if (!e) throw paramError('statistic: cannot parse --every value');
        t.every = e - 1;
        t.invert = invert;
        break;
      }
      case '--packet': {
        const p = parseUintAny(args[0]!, 0xffffffff);
        if (p === undefined) throw paramError('statistic: cannot parse --packet value');
        t.packet = p;
        break;
      }
    }
  },
  finish(m, seen) {
    const t = m as Record<string, unknown>;
    if (!seen.has('--mode')) throw paramError('statistic: option "--mode" must be specified');
    if (t.mode === 'random') {
      if (seen.has('--every') || seen.has('--packet')) throw paramError('statistic: --every and --packet need --mode nth');
      if (!seen.has('--probability')) throw paramError('statistic: --mode random needs --probability');
      delete t.every; delete t.packet;
    } else {
      if (seen.has('--probability')) throw paramError('statistic: --probability needs --mode random');
      if (!seen.has('--every')) throw paramError('statistic: --mode nth needs --every');
      if (!seen.has('--packet')) throw paramError('statistic: option "--every" also requires "--packet".\n');
      if ((t.packet as number) > (t.every as number)) throw paramError('statistic: --packet must be smaller than --every');
      delete t.probability;
    }
  },
  save(m) {
    const t = m as Extract<Match, { kind: 'statistic' }>;
    if (t.mode === 'random') return ` --mode random ${bang(t.invert)}--probability ${(t.probability / 0x80000000).toFixed(11)}`;
    return ` --mode nth ${bang(t.invert)}--every ${t.every + 1} --packet ${t.packet}`;
  },
};

export const MATCH_MODULES: ReadonlyMap<string, MatchModule> = new Map(
  [tcpLike('tcp'), tcpLike('udp'), icmp, icmp6, multiport, comment, conntrack, state, iprange, length, ttl, hl,
    mark, connmark, pkttype, dscp, tos, limit, statistic, mac, ecn, tcpmss, owner, setMatch, recent, hashlimit, addrtype].map((m) => [m.name, m]),
);

/** Match modules iptables has that bpftables does not implement yet (clear error, not "unknown"). */
export const KNOWN_UNSUPPORTED_MATCHES = new Set([
  'ah', 'bpf', 'cgroup', 'cluster', 'connbytes', 'connlabel', 'connlimit', 'cpu', 'dccp',
  'devgroup', 'esp', 'helper', 'ipcomp', 'ipv6header', 'ipvs', 'mh', 'nfacct', 'osf', 'physdev', 'policy', 'quota', 'rateest', 'realm',
  'rpfilter', 'rt', 'sctp', 'socket', 'string', 'time', 'u32',
  'udplite', 'frag', 'hbh', 'dst', 'eui64', 'srh', 'ipv4options', 'geoip',
]);

export function moduleOf(m: Match): MatchModule {
  const mod = MATCH_MODULES.get(m.kind);
  if (!mod) throw new Error(`no module for match ${m.kind}`);
  return mod;
}
