/**
 * ipset's language, pure: set types and their headers, elements
 * (addresses, networks, protocol:port), the command line and restore
 * lines, and the list/save text. The kernel side (BPF maps holding the
 * elements) is native/ipsets.ts; the command is compat/ipset.ts.
 */
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6, prefixMask6, and6, rangeBlocks } from './addr';
import { BpftablesError, type ExitStatus } from './errors';
import { ICMP_TYPES, ICMP6_TYPES, type NameDb } from './names';

export const IPSET_VERSION = 'v7.17';
export const SET_TYPES = ['hash:ip', 'hash:net', 'hash:ip,port', 'hash:net,port'] as const;
export type SetType = (typeof SET_TYPES)[number];
/** ipset's revision of each type (shown by list). */
export const TYPE_REVISION: Record<SetType, number> = { 'hash:ip': 6, 'hash:net': 7, 'hash:ip,port': 7, 'hash:net,port': 8 };
export const MAX_SET_NAME = 31;
/** Every type ipset knows (the ones not in SET_TYPES are refused as not supported yet). */
const IPSET_TYPES = ['bitmap:ip', 'bitmap:ip,mac', 'bitmap:port', 'hash:ip', 'hash:mac', 'hash:ip,mac', 'hash:net', 'hash:net,net', 'hash:ip,port',
  'hash:net,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:ip,mark', 'hash:net,port,net', 'hash:net,iface', 'list:set'];

export interface SetMeta {
  name: string;
  type: SetType;
  family: 4 | 6;
  hashsize: number;
  maxelem: number;
  /** default timeout in seconds of new elements (undefined: the set has no timeouts) */
  timeout?: number;
  bucketsize: number;
  initval: number;
}

/** One element: an address or network, and for the ,port types a protocol and port (ICMP: type << 8 | code). */
export interface SetElement {
  addr: number[]; // four words (IPv6) or one (IPv4), host order
  cidr: number; // prefix length (full length for :ip types)
  proto?: number;
  port?: number;
}

export class IpsetError extends BpftablesError {
  constructor(message: string, status: ExitStatus = 1) { super(message, status); }
}

const hasPort = (t: SetType): boolean => t.endsWith(',port');
const isNet = (t: SetType): boolean => t.startsWith('hash:net');
export const dimensions = (t: SetType): number => (hasPort(t) ? 2 : 1);

const PORT_PROTOS: ReadonlyArray<[string, number]> = [['tcp', 6], ['udp', 17], ['sctp', 132], ['udplite', 136], ['icmp', 1], ['icmpv6', 58]];

function parseAddr(text: string, family: 4 | 6): number[] | undefined {
  if (family === 4) { const a = parseIpv4(text); return a === undefined ? undefined : [a]; }
  return parseIpv6(text) ?? undefined;
}

/** Most elements one range or network may stand for in a hash:ip(,port) set or a port range (ipset's own limit). */
export const MAX_RANGE = 65536;

/**
 * The elements an argument stands for: hash:ip(,port) takes an IPv4 network
 * or a range "a-b" (every address), hash:net(,port) an IPv4 range (the
 * networks covering it), the ,port types a port range "proto:lo-hi".
 */
export function parseElements(text: string, meta: Pick<SetMeta, 'type' | 'family'>, db: NameDb): SetElement[] {
  const [addrPart, ...rest] = text.split(',');
  const portPart = rest.join(',');
  let addrs: string[] = [addrPart!];
  const dash = addrPart!.indexOf('-');
  if (meta.family === 4 && (dash >= 0 || (!isNet(meta.type) && addrPart!.includes('/')))) {
    let lo: number | undefined, hi: number | undefined;
    if (dash >= 0) { lo = parseIpv4(addrPart!.slice(0, dash)); hi = parseIpv4(addrPart!.slice(dash + 1)); }
    else {
      const [a, c] = addrPart!.split('/');
      const base = parseIpv4(a!), bits = Number(c);
      if (base !== undefined && /^\d+$/.test(c ?? '') && bits >= 1 && bits <= 32) {
        const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
        lo = (base & mask) >>> 0; hi = (lo | ~mask) >>> 0;
      }
    }
    if (lo === undefined || hi === undefined || lo > hi) throw new IpsetError(`Syntax error: cannot parse ${addrPart}: resolving to IPv4 address failed`);
    if (isNet(meta.type)) addrs = rangeBlocks(BigInt(lo), BigInt(hi), 32).map(([a, c]) => `${fmtIpv4(Number(a))}/${c}`);
    else {
      if (hi - lo + 1 > MAX_RANGE) throw new IpsetError('Syntax error: the range is too large');
      addrs = Array.from({ length: hi - lo + 1 }, (_, i) => fmtIpv4(lo! + i));
    }
  }
  let ports: (string | undefined)[] = [rest.length ? portPart : undefined];
  const pm = /^(?:([a-z0-9]+):)?(\d+)-(\d+)$/i.exec(portPart);
  if (rest.length && pm) {
    const lo = Number(pm[2]), hi = Number(pm[3]);
    if (lo > hi || hi > 65535) throw new IpsetError(`Syntax error: cannot parse '${portPart}' as a port range`);
    if (hi - lo + 1 > MAX_RANGE) throw new IpsetError('Syntax error: the range is too large');
    ports = Array.from({ length: hi - lo + 1 }, (_, i) => `${pm[1] ? `${pm[1]}:` : ''}${lo + i}`);
  }
  const out: SetElement[] = [];
  for (const a of addrs) for (const p of ports) out.push(parseElement(p === undefined ? a : `${a},${p}`, meta, db));
  return out;
}

/** An element as `add`/`del`/`test` take it ("1.2.3.4", "10.0.0.0/8", "1.2.3.4,udp:53", "2001:db8::/32,80"). */
export function parseElement(text: string, meta: Pick<SetMeta, 'type' | 'family'>, db: NameDb): SetElement {
  const bad = (what: string): IpsetError => new IpsetError(what);
  const [addrPart, portPart, extra] = text.split(',');
  if (extra !== undefined || (hasPort(meta.type) && portPart === undefined) || (!hasPort(meta.type) && portPart !== undefined)) {
    throw bad(`Syntax error: Elem separator in ${text}, but settype ${meta.type} supports none.`.replace(' none.', hasPort(meta.type) ? ' one.' : ' none.'));
  }
  const bits = meta.family === 4 ? 32 : 128;
  const slash = addrPart!.indexOf('/');
  const addrText = slash < 0 ? addrPart! : addrPart!.slice(0, slash);
  let cidr = bits;
  if (slash >= 0) {
    if (!isNet(meta.type)) throw bad(`Syntax error: plain IP address must be supplied: ${addrPart}`);
    const c = addrPart!.slice(slash + 1);
    if (!/^\d+$/.test(c) || Number(c) > bits || Number(c) === 0) throw bad(`Syntax error: '${c}' is out of range 1-${bits}`);
    cidr = Number(c);
  }
  const addr = parseAddr(addrText, meta.family);
  if (!addr) throw bad(`Syntax error: cannot parse ${addrText}: resolving to ${meta.family === 4 ? 'IPv4' : 'IPv6'} address failed`);
  const el: SetElement = { addr: maskAddr(addr, cidr, meta.family), cidr };
  if (portPart !== undefined) {
    const colon = portPart.indexOf(':');
    let protoName = 'tcp', portText = portPart;
    if (colon >= 0) { protoName = portPart.slice(0, colon).toLowerCase(); portText = portPart.slice(colon + 1); }
    const proto = PORT_PROTOS.find(([n]) => n === protoName)?.[1];
    if (proto === undefined) throw bad(`Syntax error: cannot parse '${protoName}' as a protocol`);
    el.proto = proto;
    if (proto === 1 || proto === 58) {
      const names = proto === 1 ? ICMP_TYPES : ICMP6_TYPES;
      // ipset also knows ping and pong
      const alias = portText === 'ping' ? 'echo-request' : portText === 'pong' ? 'echo-reply' : portText;
      // a name for a whole type (any code) stands for its code 0, as in ipset's table
      const named = names.find(([n, , lo, hi]) => n === alias && (lo === hi || (lo === 0 && hi === 0xff)));
      const m = /^(\d+)\/(\d+)$/.exec(portText);
      if (named) el.port = (named[1] << 8) | named[2];
      else if (m && Number(m[1]) < 256 && Number(m[2]) < 256) el.port = (Number(m[1]) << 8) | Number(m[2]);
      else throw bad(`Syntax error: cannot parse '${portText}' as a ${proto === 1 ? 'ICMP' : 'ICMPv6'} type`);
    } else {
      const n = /^\d+$/.test(portText) ? Number(portText) : db.service(portText, protoName);
      if (n === undefined || n > 65535) throw bad(`Syntax error: cannot parse '${portText}' as a ${protoName} port`);
      el.port = n;
    }
  }
  return el;
}

function maskAddr(addr: number[], cidr: number, family: 4 | 6): number[] {
  if (family === 4) return [cidr === 0 ? 0 : (addr[0]! & (0xffffffff << (32 - cidr))) >>> 0];
  return and6(addr, prefixMask6(cidr));
}

/** An element as ipset prints it. */
export function formatElement(el: SetElement, meta: Pick<SetMeta, 'type' | 'family'>): string {
  let s = meta.family === 4 ? fmtIpv4(el.addr[0]!) : fmtIpv6(el.addr);
  if (isNet(meta.type) && el.cidr !== (meta.family === 4 ? 32 : 128)) s += `/${el.cidr}`;
  if (el.proto !== undefined) {
    const pname = PORT_PROTOS.find(([, n]) => n === el.proto)?.[0] ?? String(el.proto);
    if (el.proto === 1 || el.proto === 58) {
      const names = el.proto === 1 ? ICMP_TYPES : ICMP6_TYPES;
      const t = el.port! >> 8, c = el.port! & 0xff;
      const named = names.find(([, type, lo, hi]) => type === t && lo === c && hi === c)
        ?? names.find(([, type, lo, hi]) => type === t && c === 0 && lo === 0 && hi === 0xff);
      s += `,${pname}:${named ? named[0] : `${t}/${c}`}`;
    } else s += `,${pname}:${el.port}`;
  }
  return s;
}

/**
 * The order list and save print members in: ipset walks its hash buckets,
 * so its order is fixed by the set's initval and hashsize, not by when
 * members were added. Ours is the same kind of function (FNV-1a over the
 * element, seeded with initval, bucket = hash mod hashsize, then the
 * element text), so a set restored from its own save lists back in the
 * same order whatever map holds it.
 */
export function listingOrder<T extends { el: SetElement }>(members: T[], meta: Pick<SetMeta, 'type' | 'family' | 'initval' | 'hashsize'>): T[] {
  const keyed = members.map((m) => {
    const text = formatElement(m.el, meta);
    let h = (0x811c9dc5 ^ meta.initval) >>> 0;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    return { m, bucket: h % Math.max(1, meta.hashsize), text };
  });
  keyed.sort((a, b) => a.bucket - b.bucket || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  return keyed.map((k) => k.m);
}

/** The header fields after "family" that list and save print. */
export function headerText(m: SetMeta): string {
  return `family ${m.family === 4 ? 'inet' : 'inet6'} hashsize ${m.hashsize} maxelem ${m.maxelem}${m.timeout !== undefined ? ` timeout ${m.timeout}` : ''} bucketsize ${m.bucketsize} initval 0x${m.initval.toString(16).padStart(8, '0')}`;
}

/** `create` options (after NAME TYPE) → the set's header. */
export function parseCreate(name: string, type: string, opts: string[], initval: number): SetMeta {
  checkName(name);
  if (!(SET_TYPES as readonly string[]).includes(type)) {
    if (IPSET_TYPES.includes(type)) throw new IpsetError(`set type ${type} is not supported by bpftables yet`, 1);
    throw new IpsetError(`Syntax error: typename '${type}' is unknown`);
  }
  const meta: SetMeta = { name, type: type as SetType, family: 4, hashsize: 1024, maxelem: 65536, bucketsize: 12, initval };
  const num = (o: string, v: string | undefined, max = 0xffffffff): number => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) > max) throw new IpsetError(`Syntax error: '${v ?? ''}' is invalid as number`);
    return Number(v);
  };
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    switch (o) {
      case 'family': {
        const f = opts[++i];
        if (f === 'inet' || f === 'ipv4') meta.family = 4;
        else if (f === 'inet6' || f === 'ipv6') meta.family = 6;
        else throw new IpsetError(`Syntax error: unknown family ${f ?? ''}`);
        break;
      }
      case '-4': meta.family = 4; break;
      case '-6': meta.family = 6; break;
      case 'hashsize': {
        let h = num(o, opts[++i]);
        if (h < 64) h = 64;
        meta.hashsize = 2 ** Math.ceil(Math.log2(h)); // the kernel rounds up to a power of two
        break;
      }
      case 'maxelem': meta.maxelem = num(o, opts[++i]); if (!meta.maxelem) throw new IpsetError('Syntax error: maxelem must be positive'); break;
      case 'timeout': meta.timeout = num(o, opts[++i], 2147483); break;
      case 'bucketsize': meta.bucketsize = Math.min(12, Math.max(2, num(o, opts[++i]) & ~1)); break;
      case 'initval': { const v = opts[++i] ?? ''; if (!/^0x[0-9a-f]{1,8}$/i.test(v)) throw new IpsetError(`Syntax error: '${v}' is invalid as number`); meta.initval = parseInt(v, 16); break; }
      case 'counters': case 'comment': case 'skbinfo': case 'forceadd': case 'netmask': case 'markmask':
        throw new IpsetError(`create option ${o} is not supported by bpftables yet`);
      default: throw new IpsetError(`Syntax error: Unknown argument: ${o}`);
    }
  }
  return meta;
}

export function checkName(name: string): void {
  if (name.length === 0 || name.length > MAX_SET_NAME) throw new IpsetError(`Syntax error: setname '${name}' is longer than ${MAX_SET_NAME} characters`);
}

/** Element options of add (timeout N); returns the timeout if given. */
export function parseElementOptions(opts: string[], meta: SetMeta): { timeout?: number } {
  const out: { timeout?: number } = {};
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    if (o === 'timeout') {
      if (meta.timeout === undefined) throw new IpsetError('Timeout cannot be used: set was created without timeout support');
      const v = opts[++i];
      if (v === undefined || !/^\d+$/.test(v) || Number(v) > 2147483) throw new IpsetError(`Syntax error: '${v ?? ''}' is invalid as number`);
      out.timeout = Number(v);
    } else if (['packets', 'bytes', 'comment', 'skbmark', 'skbprio', 'skbqueue', 'nomatch'].includes(o)) {
      throw new IpsetError(`element option ${o} is not supported by bpftables yet`);
    } else throw new IpsetError(`Syntax error: Unknown argument: ${o}`);
  }
  return out;
}
