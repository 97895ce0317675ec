/**
 * `nft -j list ...`: the ruleset as nft's JSON (libnftables-json), built
 * from the same canonical rule terms the text listing prints (RuleText),
 * so both listings say the same. Objects come in nft's order: per table,
 * the table, its sets, its chains, then every chain's rules. Serialized as
 * nft serializes it (", " and ": " separators, one line).
 */
import { CONCAT, type CounterValue, type ListedRule, type ListedTable, type ListOptions } from './nft-print';
import { parseNftTime } from './nft-time';
import type { NftSet } from './nft-sets';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** nft's JSON text for a value. */
export function jsonText(v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jsonText).join(', ')}]`;
  return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${jsonText(x)}`).join(', ')}}`;
}

export class JsonUnsupported extends Error {}

const PAYLOAD = /^(ether saddr|ip (?:saddr|daddr|protocol|ttl|frag-off|dscp|length|version|hdrlength|ecn|id|checksum)|ip6 (?:saddr|daddr|hoplimit|dscp|length|nexthdr|version|ecn|flowlabel)|tcp (?:sport|dport|flags|sequence|ackseq|doff|window|checksum|urgptr)|udp (?:sport|dport|length|checksum)|udplite (?:sport|dport|csumcov|checksum)|sctp (?:sport|dport|vtag|checksum)|dccp (?:sport|dport)|ah (?:hdrlength|reserved|spi|sequence)|esp (?:spi|sequence)|comp (?:flags|cpi)|th (?:sport|dport)|icmp (?:type|code|checksum|id|sequence)|icmpv6 (?:type|code|checksum|id|sequence))$/;
const META = /^(meta (?:l4proto|nfproto|mark|pkttype|length)|iifname|oifname)$/;

/** The left side of a match: a payload field, a meta key or ct state. */
function selector(sel: string): Json {
  if (PAYLOAD.test(sel)) { const [protocol, field] = sel.split(' '); return { payload: { protocol: protocol!, field: field! } }; }
  if (META.test(sel)) return { meta: { key: sel.startsWith('meta ') ? sel.slice(5) : sel } };
  if (/^ct (state|status|direction|mark|protocol)$/.test(sel)) return { ct: { key: sel.slice(3) } };
  const fib = /^fib (saddr|daddr)((?: \. (?:mark|iif|oif))*) (type|oif|oifname)$/.exec(sel);
  if (fib) return { fib: { result: fib[3]!, flags: [fib[1]!, ...fib[2]!.split(' . ').slice(1)] } };
  throw new JsonUnsupported(sel);
}

/** One value as nft's JSON has it: numbers as numbers, `a-b` as a range, `a/n` as a prefix, `"x"` as x. */
function value(v: string): Json {
  if (v.startsWith('@')) return v;
  if (v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1);
  if (/^\d+$/.test(v)) return Number(v);
  if (/^0x[0-9a-f]+$/i.test(v)) return Number(v);
  const prefix = /^([0-9a-f:.]+)\/(\d+)$/i.exec(v);
  if (prefix) return { prefix: { addr: prefix[1]!, len: Number(prefix[2]) } };
  // a range of numbers or addresses (names such as echo-request have hyphens too)
  const range = /^(\d[\d.]*|[0-9a-f]*:[0-9a-f:.]*)-(\d[\d.]*|[0-9a-f]*:[0-9a-f:.]*)$/i.exec(v);
  if (range) return { range: [value(range[1]!), value(range[2]!)] };
  return v;
}

const elements = (inner: string): string[] => inner.split(', ').map((x) => x.trim()).filter(Boolean);
/** `{ a, b }` as a set, a comma list (a bit mask) as a list, else one value. */
function rhs(v: string): Json {
  if (v.startsWith('{ ') && v.endsWith(' }')) return { set: elements(v.slice(2, -2)).map(value) };
  if (v.includes(' | ')) return { '|': v.split(' | ').map(value) };
  if (v.includes(',') && !v.startsWith('"')) return v.split(',').map(value);
  return value(v);
}

const VERDICTS = new Set(['accept', 'drop', 'continue', 'return']);
function verdict(v: string): Json {
  if (VERDICTS.has(v)) return { [v]: null };
  const m = /^(jump|goto) (\S+)$/.exec(v);
  if (m) return { [m[1]!]: { target: m[2]! } };
  throw new JsonUnsupported(v);
}


/** One canonical term as a JSON statement. */
function term(t: string, counter: CounterValue | undefined, tableFamily: string, o: ListOptions = {}): Json {
  const fib = /^fib (saddr|daddr)((?: \. (?:mark|iif|oif))*) (type|oif|oifname) (?:(!=) )?(?!vmap )(.+)$/.exec(t);
  if (fib) {
    const flags = [fib[1]!, ...fib[2]!.split(' . ').slice(1)];
    // oif: exists and missing as booleans, indexes by the name they have now (else as a string of digits, as nft prints them)
    const device = (n: Json): Json => (typeof n === 'number' ? o.ifName?.(n) ?? String(n) : n);
    const r = fib[3] === 'oif' && (fib[5] === 'exists' || fib[5] === 'missing') ? fib[5] === 'exists' : rhs(fib[5]!);
    const right = fib[3] !== 'oif' || typeof r === 'boolean' ? r : typeof r === 'object' && r !== null && 'set' in r ? { set: (r.set as Json[]).map(device) } : device(r);
    return { match: { op: fib[4] ?? '==', left: { fib: { result: fib[3]!, flags } }, right } };
  }
  const named = /^((?:[a-z][\w-]*(?: [a-z][\w-]*)? \. )+[a-z][\w-]*(?: [a-z][\w-]*)?) (@\S+)$/.exec(t);
  if (named) return { match: { op: '==', left: { concat: named[1]!.split(' . ').map(selector) }, right: named[2]! } };
  const cat = CONCAT.exec(t);
  if (cat) {
    return { match: { op: '==', left: { concat: cat[1]!.split(' . ').map(selector) }, right: { set: elements(cat[2]!).map((e) => ({ concat: e.split(' . ').map(value) })) } } };
  }
  // interface indexes: by the name they have now (a gone one by its number), as the text listing
  const dev = /^(iif|oif) (?:(!=) )?(.+)$/.exec(t);
  if (dev) {
    const named = (n: Json): Json => (typeof n === 'number' ? o.ifName?.(n) ?? n : n);
    const r = rhs(dev[3]!);
    return { match: { op: dev[2] ?? '==', left: { meta: { key: dev[1]! } }, right: typeof r === 'object' && r !== null && 'set' in r ? { set: (r.set as Json[]).map(named) } : named(r) } };
  }
  if (VERDICTS.has(t) || /^(jump|goto) \S+$/.test(t)) return verdict(t);
  if (t === 'counter') return { counter: { packets: counter?.packets ?? 0, bytes: counter?.bytes ?? 0 } };
  const quota = /^quota (over )?(\d+) (\S+)(?: used (\d+) (\S+))?$/.exec(t);
  if (quota) return { quota: { val: Number(quota[2]), val_unit: quota[3]!, ...(quota[1] ? { inv: true } : {}), ...(quota[4] ? { used: Number(quota[4]), used_unit: quota[5]! } : {}) } };
  const log = /^log(?: prefix "([^"]*)")?(?: level (\S+))?(?: flags (.+))?$/.exec(t);
  if (log) {
    if (!log[1] && !log[2] && !log[3]) return { log: null };
    const f = log[3];
    const flags: Json | undefined = f === undefined ? undefined : f.startsWith('tcp ') ? f.slice(4).split(',').map((x) => `tcp ${x}`) : f;
    return { log: { ...(log[1] !== undefined ? { prefix: log[1] } : {}), ...(log[2] ? { level: log[2] } : {}), ...(flags !== undefined ? { flags: Array.isArray(flags) && flags.length === 1 ? flags[0]! : flags } : {}) } };
  }
  if (t === 'reject') return { reject: { type: tableFamily === 'inet' ? 'icmpx' : tableFamily === 'ip' ? 'icmp' : 'icmpv6', expr: 'port-unreachable' } };
  if (t === 'reject with tcp reset') return { reject: { type: 'tcp reset' } };
  const rej = /^reject with (icmp|icmpv6|icmpx) (\S+)$/.exec(t);
  if (rej) return { reject: { type: rej[1]!, expr: rej[2]! } };
  const namedMap = /^(.+?) vmap (@\S+)$/.exec(t);
  if (namedMap) return { vmap: { key: selector(namedMap[1]!), data: namedMap[2]! } };
  const vmap = /^(.+?) vmap \{ (.*) \}$/.exec(t);
  if (vmap) {
    // fib oif's keys: interface indexes, by the name they have now (else digits, as nft prints them)
    const key = /^fib .* oif$/.test(vmap[1]!) ? (k: string): Json => (/^\d+$/.test(k) ? o.ifName?.(Number(k)) ?? k : value(k)) : value;
    return { vmap: { key: selector(vmap[1]!), data: { set: elements(vmap[2]!).map((e) => { const i = e.lastIndexOf(' : '); return [key(e.slice(0, i)), verdict(e.slice(i + 3))]; }) } } };
  }
  // tcp flags: `V / M`, `& M OP V` (the mask applied to the field), `== V`, one flag
  const flagsMask = /^tcp flags (!= )?(\S+) \/ (\S+)$/.exec(t) ?? /^tcp flags & (\S+) (==|!=) (\S+)$/.exec(t);
  if (flagsMask) {
    const slash = t.includes(' / ');
    const [op, v, m] = slash ? [flagsMask[1] ? '!=' : '==', flagsMask[2]!, flagsMask[3]!] : [flagsMask[2]!, flagsMask[3]!, flagsMask[1]!];
    const list = (x: string): Json => (x.includes(',') ? x.split(',') : x);
    return { match: { op, left: { '&': [selector('tcp flags'), list(m)] }, right: list(v) } };
  }
  const tuple = /^ct (original|reply) (ip6? (?:saddr|daddr)|proto-src|proto-dst) (?:(!=) )?(.+)$/.exec(t);
  if (tuple) return { match: { op: tuple[3] ?? '==', left: { ct: { key: tuple[2]!, dir: tuple[1]! } }, right: value(tuple[4]!) } };
  // ct expiration: nft's JSON has whole seconds
  const exp = /^ct expiration (?:(!=|<=|>=|<|>) )?(.*)$/.exec(t);
  if (exp) {
    const secs = (x: string): number => Math.floor((parseNftTime(x) ?? 0) / 1000);
    const v = exp[2]!;
    const r = /^(\S+)-(\S+)$/.exec(v);
    return { match: { op: exp[1] ?? '==', left: { ct: { key: 'expiration' } }, right: r ? { range: [secs(r[1]!), secs(r[2]!)] } : secs(v) } };
  }
  const limit = /^limit rate (over )?(\d+)\/(\w+)(?: burst (\d+) packets)?$/.exec(t);
  if (limit) return { limit: { rate: Number(limit[2]), burst: Number(limit[4] ?? 5), per: limit[3]!, ...(limit[1] ? { inv: true } : {}) } };
  const mss = /^tcp option maxseg size (?:(!=|<=|>=|<|>) )?(.+)$/.exec(t);
  if (mss) return { match: { op: mss[1] ?? '==', left: { 'tcp option': { name: 'maxseg', field: 'size' } }, right: value(mss[2]!) } };
  const numgen = /^numgen inc mod (\d+) (?:(!=) )?(\d+)$/.exec(t);
  if (numgen) return { match: { op: numgen[2] ?? '==', left: { numgen: { mode: 'inc', mod: Number(numgen[1]), offset: 0 } }, right: Number(numgen[3]) } };
  const random = /^meta random & (\d+) (<=|>=|<|>) (\d+)$/.exec(t);
  if (random) return { match: { op: random[2]!, left: { '&': [{ meta: { key: 'random' } }, Number(random[1])] }, right: Number(random[3]) } };
  const masked = /^(ip saddr|ip daddr|ip frag-off|meta mark|ct mark) & (\S+) (==|!=) (\S+)$/.exec(t);
  if (masked) return { match: { op: masked[3]!, left: { '&': [selector(masked[1]!), value(masked[2]!)] }, right: value(masked[4]!) } };
  const m = /^((?:ip6?|tcp|udp|udplite|sctp|dccp|ah|esp|comp|th|icmp|icmpv6|meta|ct|ether) \S+|iifname|oifname) (?:(!=|==|<=|>=|<|>|!) )?(.+)$/.exec(t);
  if (!m) throw new JsonUnsupported(t);
  const [, sel, op0, v] = m as unknown as [string, string, string | undefined, string];
  // bit masks (ct state, one tcp flag) without an operator: "in" for values given as flags
  let op = op0 ?? '==';
  if (!op0 && (sel === 'ct state' || sel === 'ct status' || sel === 'tcp flags') && !v.startsWith('{')) op = 'in';
  return { match: { op, left: selector(sel), right: rhs(v) } };
}

function setJson(t: ListedTable, s: NftSet): Json {
  const elem = (e: string): Json => {
    if (s.verdict) { const i = e.lastIndexOf(' : '); return [value(e.slice(0, i)), verdict(e.slice(i + 3))]; }
    return s.types ? { concat: e.split(' . ').map(value) } : value(e);
  };
  return {
    [s.verdict ? 'map' : 'set']: {
      family: t.family, name: s.name, table: t.name, type: s.types ?? s.type, handle: s.handle,
      ...(s.verdict ? { map: 'verdict' } : {}),
      ...(s.flags.length ? { flags: s.flags } : {}),
      ...(s.elements.length ? { elem: s.elements.map(elem) } : {}),
    },
  };
}

/** The JSON objects of one table, in nft's order; `only`: just that chain (and its rules). */
export function tableJson(t: ListedTable, counterOf: (r: ListedRule) => CounterValue | undefined, o: ListOptions = {}, only?: string): Json[] {
  const out: Json[] = [{ table: { family: t.family, name: t.name, handle: t.handle } }];
  if (only === undefined) for (const s of t.sets ?? []) out.push(setJson(t, s));
  const chains = only === undefined ? t.chains : t.chains.filter((c) => c.name === only);
  for (const c of chains) {
    out.push({
      chain: {
        family: t.family, table: t.name, name: c.name, handle: c.handle,
        ...(c.base ? { type: c.base.type, hook: c.base.hook, prio: c.base.priority, policy: c.base.policy } : {}),
      },
    });
  }
  for (const c of chains) {
    for (const r of c.rules) {
      const comment = r.text.find((x) => x.startsWith('comment "'));
      const counter = o.stateless ? undefined : counterOf(r);
      const expr = r.text.filter((x) => x !== comment).map((x) => (x === 'counter' && o.stateless ? { counter: null } : term(x, counter, t.family, o)));
      out.push({ rule: { family: t.family, table: t.name, chain: c.name, handle: r.handle, ...(comment ? { comment: comment.slice(9, -1) } : {}), expr } });
    }
  }
  return out;
}

/** `{"nftables": [metainfo, ...objects]}` as nft prints it. */
export function nftablesJson(objects: Json[], version: string): string {
  return jsonText({ nftables: [{ metainfo: { version, release_name: 'bpftables', json_schema_version: 1 } }, ...objects] });
}
