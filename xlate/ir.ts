/**
 * The intermediate representation: the one contract between the front ends
 * (iptables-save text, iptables argv, later nft) and the code generator.
 *
 * A Ruleset holds tables; a table holds chains in order; a chain holds rules.
 * A rule is the iptables "ipt_entry": the fixed IP-header part (`ip`), an
 * ordered list of match extensions (`matches`, evaluated in order after the
 * IP part, exactly as the kernel does), and a verdict. Every value is already
 * validated and normalized (addresses masked, ports numeric), so printers and
 * code generators never re-parse text. Plain data: JSON-serializable, which is
 * how the live ruleset is stored beside the programs in the kernel.
 */

export type Family = 4 | 6;
export type Policy = 'ACCEPT' | 'DROP';
export const BUILTIN_CHAINS = ['INPUT', 'FORWARD', 'OUTPUT'] as const;
export type BuiltinChain = (typeof BUILTIN_CHAINS)[number];
/** iptables tables bpftables does not implement yet: refused clearly rather than called unknown. */
export const OTHER_TABLES: ReadonlySet<string> = new Set(['nat', 'mangle', 'raw', 'security']);

export interface Counters { packets: number; bytes: number }

/** Where a rule came from, for error messages and `dump --asm`. */
export interface SourceRef { file: string; line: number }

export interface Ruleset {
  family: Family;
  tables: Table[];
}

export interface Table {
  name: 'filter';
  /** chains in the order iptables-save prints them: built-ins first (INPUT, FORWARD, OUTPUT), then user chains */
  chains: Chain[];
}

export interface Chain {
  name: string;
  /** present for built-in chains only */
  policy?: Policy;
  counters: Counters;
  rules: Rule[];
}

/** IPv4 prefix or netmask: addr is already masked; both are host-order unsigned 32-bit. */
export interface AddrMatch { addr: number; mask: number; invert: boolean }
/** Interface name match: `wildcard` means the name was given with a trailing "+". */
export interface IfaceMatch { name: string; wildcard: boolean; invert: boolean }

export interface IpPart {
  src?: AddrMatch;
  dst?: AddrMatch;
  in?: IfaceMatch;
  out?: IfaceMatch;
  /** protocol number; absent means "all" */
  proto?: { num: number; invert: boolean };
  /** -f: only non-first fragments (invert: only first fragments / unfragmented) */
  frag?: { invert: boolean };
}

/** Inclusive range of 16-bit values. */
export type Range = [number, number];

export type Match =
  | { kind: 'tcp'; sport?: PortMatch; dport?: PortMatch; flags?: TcpFlagsMatch }
  | { kind: 'udp'; sport?: PortMatch; dport?: PortMatch }
  | { kind: 'icmp'; type: number; codeMin: number; codeMax: number; invert: boolean; /** type 255 = any */ }
  | { kind: 'multiport'; dir: 'src' | 'dst' | 'any'; ports: Range[]; invert: boolean }
  | { kind: 'comment'; text: string }
  | { kind: 'conntrack'; ctstate: CtState[]; invert: boolean }
  | { kind: 'state'; states: CtState[]; invert: boolean }
  | { kind: 'iprange'; src?: IpRange; dst?: IpRange }
  | { kind: 'length'; min: number; max: number; invert: boolean }
  | { kind: 'ttl'; op: 'eq' | 'lt' | 'gt'; value: number; invert: boolean };

export interface PortMatch { range: Range; invert: boolean }
export interface TcpFlagsMatch { mask: number; comp: number; invert: boolean }
/** host-order unsigned 32-bit bounds, inclusive */
export interface IpRange { from: number; to: number; invert: boolean }

/** Connection tracking states, in the order iptables prints them. */
export const CT_STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED'] as const;
export type CtState = (typeof CT_STATES)[number];

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string }
  /** no target: the rule only counts */
  | { kind: 'none' };

export interface Rule {
  ip: IpPart;
  matches: Match[];
  verdict: Verdict;
  counters: Counters;
  src?: SourceRef;
}

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export function emptyFilterTable(): Table {
  return {
    name: 'filter',
    chains: BUILTIN_CHAINS.map((name) => ({ name, policy: 'ACCEPT' as Policy, counters: { packets: 0, bytes: 0 }, rules: [] })),
  };
}

export function isBuiltin(name: string): name is BuiltinChain {
  return (BUILTIN_CHAINS as readonly string[]).includes(name);
}

/** Does any rule of the table need connection tracking in the namespace? */
export function needsConntrack(t: Table): boolean {
  return t.chains.some((c) => c.rules.some((r) => r.matches.some((m) => m.kind === 'conntrack' || m.kind === 'state')));
}
