/**
 * `nft -n`: a listing's symbolic constants as numbers, the way nft 1.0
 * prints them with --numeric (ct states and status bits, DSCP and marks in
 * hex; ICMP types and codes, packet types, ct directions, families, route
 * types and reject codes in decimal; protocols in decimal, as -p).
 * Applied term by term to the canonical listing terms xlate/nft.ts builds.
 */
import { parseNftTime } from './nft-time';
import { CT_STATE_BITS, CT_STATUS, DSCP_NAMES, FIB_TYPES, ICMP_CODES, ICMP_TYPES, ICMPV6_CODES, ICMPV6_TYPES, NFT_TCP_FLAGS, PKTTYPES } from './nft';

const hex = (n: number): string => `0x${n.toString(16)}`;
/** DSCP values: two hex digits, as nft prints them */
const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;
const FAMILY_NUMBERS: Record<string, number> = { ipv4: 2, ipv6: 10 };
const DIRECTIONS: Record<string, number> = { original: 0, reply: 1 };
const FIB_NUMBERS: Record<string, number> = Object.fromEntries(FIB_TYPES.map((n, i) => [n, i]));

/** One value (or a range of two) of a table, as a number; anything it does not name stays as it is. */
function mapValue(v: string, table: Record<string, number>, fmt: (n: number) => string): string {
  const r = /^([a-z][\w-]*)-([a-z][\w-]*)$/.exec(v);
  if (r && table[r[1]!] !== undefined && table[r[2]!] !== undefined) return `${fmt(table[r[1]!]!)}-${fmt(table[r[2]!]!)}`;
  return table[v] !== undefined ? fmt(table[v]!) : v;
}

/** A term's value part: one value, a comma list (bit masks) or a `{ set }`. */
function mapValues(text: string, table: Record<string, number>, fmt: (n: number) => string): string {
  if (text.startsWith('{ ') && text.endsWith(' }')) return `{ ${text.slice(2, -2).split(', ').map((v) => mapValue(v, table, fmt)).join(', ')} }`;
  return text.split(',').map((v) => mapValue(v, table, fmt)).join(',');
}

const RULES: [RegExp, Record<string, number>, (n: number) => string][] = [
  [/^(ct state (?:!= |! )?)(.+)$/, CT_STATE_BITS, hex],
  [/^(ct status (?:!= )?)(.+)$/, CT_STATUS, hex],
  [/^(ct direction (?:!= )?)(.+)$/, DIRECTIONS, String],
  [/^(icmp type (?:!= )?)(.+)$/, ICMP_TYPES, String],
  [/^(icmpv6 type (?:!= )?)(.+)$/, ICMPV6_TYPES, String],
  [/^(icmp code (?:!= )?)(.+)$/, ICMP_CODES, String],
  [/^(icmpv6 code (?:!= )?)(.+)$/, ICMPV6_CODES, String],
  [/^(ip6? dscp (?:!= )?)(.+)$/, DSCP_NAMES, hex2],
  [/^(meta pkttype (?:!= )?)(.+)$/, PKTTYPES, String],
  [/^(ip6? ecn (?:!= )?)(.+)$/, { 'not-ect': 0, ect1: 1, ect0: 2, ce: 3 }, hex],
  [/^(meta nfproto (?:!= )?)(.+)$/, FAMILY_NUMBERS, String],
  [/^(fib \S+(?: \. \S+)* type (?:!= )?)(.+)$/, FIB_NUMBERS, String],
  [/^(reject with icmp )(.+)$/, ICMP_CODES, String],
  [/^(reject with icmpv6 )(.+)$/, ICMPV6_CODES, String],
  [/^(reject with icmpx )(.+)$/, { 'no-route': 0, 'port-unreachable': 1, 'host-unreachable': 2, 'admin-prohibited': 3 }, String],
];

const flagBits = (list: string): number[] => list.split(/\s*[,|]\s*/).map((f) => NFT_TCP_FLAGS[f] ?? Number(f));

/** A time as nft prints it (`4d23h59m59s`, `1s500ms`) in whole seconds, as -n (numeric time) prints it. */
function seconds(x: string): string {
  const ms = parseNftTime(x);
  return ms === undefined ? x : `${Math.floor(ms / 1000)}s`;
}

/** One listing term under -n. */
export function numericTerm(t: string): string {
  // fib's device check: a boolean, 0 or 1
  const check = /^(fib .* oif (?:!= )?)(missing|exists)$/.exec(t);
  if (check) return check[1]! + (check[2] === 'exists' ? '1' : '0');
  const exp = /^(ct expiration (?:(?:!=|<=|>=|<|>) )?)(\S+?)(?:-(\S+))?$/.exec(t);
  if (exp) return exp[1]! + seconds(exp[2]!) + (exp[3] ? `-${seconds(exp[3])}` : '');
  // tcp flags: `V / M` or `& (M) == V` → `0xV / 0xm1,0xm2` (the mask bit by bit); a plain value or list → hex
  const masked = /^tcp flags (?:(!= )?(\S+) \/ (\S+)|& \(([^)]*)\) (==|!=) (\S+))$/.exec(t);
  if (masked) {
    const value = masked[2] ?? masked[6]!, mask = masked[3] ?? masked[4]!;
    const neg = masked[1] ?? (masked[5] === '!=' ? '!= ' : '');
    const bits = (x: string): string => flagBits(x).filter((n) => n).sort((a, b) => a - b).map(hex).join(',') || '0x0';
    return `tcp flags ${neg}${bits(value)} / ${bits(mask)}`;
  }
  const plain = /^(tcp flags (?:!= |== |! )?)(.+)$/.exec(t);
  if (plain) return plain[1]! + mapValues(plain[2]!, NFT_TCP_FLAGS, hex);
  for (const [re, table, fmt] of RULES) {
    const m = re.exec(t);
    if (!m) continue;
    // a verdict map's keys
    const map = /^vmap \{ (.*) \}$/.exec(m[2]!);
    if (map) return `${m[1]}vmap { ${map[1]!.split(', ').map((e) => { const i = e.lastIndexOf(' : '); return mapValue(e.slice(0, i), table, fmt) + e.slice(i); }).join(', ')} }`;
    return m[1]! + mapValues(m[2]!, table, fmt);
  }
  return t;
}
