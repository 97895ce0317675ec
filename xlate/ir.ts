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
/** The command iptables names itself by in messages: iptables or ip6tables. */
export const commandName = (family: Family): string => (family === 6 ? 'ip6tables' : 'iptables');
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
  /** 4: iptables (NFPROTO_IPV4 hooks), 6: ip6tables (NFPROTO_IPV6 hooks) */
  family: Family;
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
export interface Addr4Match { addr: number; mask: number; invert: boolean }
/**
 * IPv6 prefix or netmask: four host-order unsigned 32-bit words each (word 0
 * holds the first four bytes of the address); addr6 is already masked.
 */
export interface Addr6Match { addr6: number[]; mask6: number[]; invert: boolean }
export type AddrMatch = Addr4Match | Addr6Match;
export const isAddr6 = (a: AddrMatch): a is Addr6Match => 'addr6' in a;
/** Interface name match: `wildcard` means the name was given with a trailing "+". */
export interface IfaceMatch { name: string; wildcard: boolean; invert: boolean }

export interface IpPart {
  src?: AddrMatch;
  dst?: AddrMatch;
  in?: IfaceMatch;
  out?: IfaceMatch;
  /**
   * protocol number; absent means "all". IPv6 only: num 0 is an explicit
   * `-p all`, which (like any -p in ip6tables) makes the kernel walk the
   * extension headers and drop packets whose chain it cannot parse.
   */
  proto?: {
    num: number; invert: boolean;
    /** nft's `meta l4proto`: a chain of IPv6 extension headers that cannot be followed does not match (ip6tables drops) */
    nft?: boolean;
  };
  /** -f: only non-first fragments (invert: only first fragments / unfragmented) */
  frag?: { invert: boolean };
}

/** Inclusive range of 16-bit values. */
export type Range = [number, number];

/**
 * `short: 'nomatch'` gives a port, flags or ICMP match nft's payload
 * semantics: only the bytes it reads must be there (see l4Need: the source
 * port's two, both ports' four, the flags byte's fourteen, the ICMP type's
 * one and code's two) and a header cut shorter does not match, negated or
 * not (iptables' matches need the whole header and drop a packet without
 * it); fragments are not skipped: the kernel's nft reads an IPv4 later
 * fragment's payload where the header would be, and an IPv6 later
 * fragment's own IPv6 header (this kernel's ipv6_find_hdr gives nft the
 * fragment's protocol but leaves its transport offset at 0), where
 * iptables' matches never match a later fragment.
 */
export type Match =
  | { kind: 'tcp'; sport?: PortMatch; dport?: PortMatch; flags?: TcpFlagsMatch; short?: 'nomatch' }
  | { kind: 'udp'; sport?: PortMatch; dport?: PortMatch; short?: 'nomatch' }
  | { kind: 'icmp'; type: number; codeMin: number; codeMax: number; invert: boolean; /** type 255 = any */ short?: 'nomatch' }
  | { kind: 'icmp6'; type: number; codeMin: number; codeMax: number; invert: boolean; short?: 'nomatch' }
  | { kind: 'multiport'; dir: 'src' | 'dst' | 'any'; ports: Range[]; invert: boolean; short?: 'nomatch' }
  | { kind: 'comment'; text: string }
  /**
   * ctstate (empty: not given; SNAT/DNAT are the connection's NAT status bits),
   * ctstatus (IPS_* bits, 0 for NONE) and ctdir (the packet's direction)
   */
  | {
    kind: 'conntrack'; ctstate: CtMatchState[]; invert: boolean; status?: { mask: number; invert: boolean }; dir?: 'ORIGINAL' | 'REPLY';
    /** the connection's layer-4 protocol (the original tuple's) */
    proto?: { num: number; invert: boolean };
    /** addresses of the original and reply tuples */
    origsrc?: AddrMatch; origdst?: AddrMatch; replsrc?: AddrMatch; repldst?: AddrMatch;
    /** ports of the original and reply tuples */
    origsrcport?: PortMatch; origdstport?: PortMatch; replsrcport?: PortMatch; repldstport?: PortMatch;
    /** seconds left before the connection expires, inclusive bounds (`ms`: milliseconds, as nft's ct expiration reads it) */
    expire?: { min: number; max: number; invert: boolean; ms?: boolean };
  }
  | { kind: 'state'; states: CtState[]; invert: boolean }
  | { kind: 'iprange'; src?: IpRange | Ip6Range; dst?: IpRange | Ip6Range }
  | { kind: 'length'; min: number; max: number; invert: boolean }
  | { kind: 'ttl'; op: 'eq' | 'lt' | 'gt'; value: number; invert: boolean }
  /** ip6tables' hop limit match (the IPv6 counterpart of ttl) */
  | { kind: 'hl'; op: 'eq' | 'lt' | 'gt'; value: number; invert: boolean }
  /** the Ethernet source address (six bytes) of a packet that came in on an Ethernet device */
  | { kind: 'mac'; addr: number[]; invert: boolean }
  /**
   * the owner of the packet's socket (OUTPUT only): fsuid / fsgid ranges,
   * inclusive, and whether a socket exists; each part invertible
   */
  | {
    kind: 'owner'; uid?: OwnerRange; gid?: OwnerRange; socketExists?: { invert: boolean };
    /** nft's meta skuid/skgid: a packet without a socket with a file matches neither == nor != */
    nft?: boolean;
  }
  /**
   * membership of the packet's address (and port) in the ipset `name`, each
   * dimension from the source or destination; setType and setFamily are the
   * set's when the rule was made (swap keeps them)
   */
  | { kind: 'set'; name: string; dirs: ('src' | 'dst')[]; invert: boolean; setType: string; setFamily: Family }
  /**
   * nft's `ip saddr @name` (and daddr, ip6): membership of the packet's
   * address in a named set of addresses (ipv4_addr, ipv6_addr). `name` is
   * the set's name in its nft table (a compiled table holds one nft table's
   * chains, so it names one set there); `elements` are its
   * elements as nft lists them (addresses; with `interval` also prefixes and
   * ranges). The code generator makes them a map the rule looks the address
   * up in, so a set of any size is one rule.
   */
  | { kind: 'nftset'; name: string; side: 'src' | 'dst'; family: Family; interval: boolean; elements: readonly string[]; invert: boolean }
  /**
   * xt_recent: the named list of recently seen addresses (source or
   * destination, under `mask`: one word for IPv4, four for IPv6); set adds
   * the address, rcheck/update look for it (within `seconds`, at least
   * `hitcount` times, with the same TTL for rttl; update also records this
   * packet), remove deletes it
   */
  | { kind: 'recent'; name: string; cmd: 'set' | 'rcheck' | 'update' | 'remove'; seconds: number; hitcount: number; rttl: boolean; side: 'source' | 'dest'; mask: number[]; invert: boolean }
  /**
   * xt_hashlimit: a token bucket per key (the modes' masked addresses and
   * ports) in the table `name`. Packet rates: avg in 1/1000000 s per
   * packet, burst in packets. Byte rates (bytes): avg is iptables' cost,
   * 2^32-1 / (bytes per second / 16 + 1), and burst how many times an
   * empty bucket may be refilled at once (0: never)
   */
  | {
    kind: 'hashlimit'; family: Family; name: string; avg: number; burst: number; bytes?: boolean; above: boolean; mode: HashlimitMode[]; srcmask: number; dstmask: number;
    /** --hashlimit-rate-match: the rate measured over windows of `interval` seconds (default 1) instead of a bucket */
    rateMatch?: boolean; interval?: number;
    size?: number; max?: number; gcinterval: number; expire: number;
  }
  /**
   * xt_addrtype (IPv4): the route type of the source / destination address
   * in the local routing table, as a set of XT_ADDRTYPE bits (1 << RTN_*),
   * optionally only when that route's device is the input / output device.
   * `fib`: nft's `fib saddr|daddr [. iif|. oif] type` instead, which is the
   * same question for IPv4 and another for IPv6 (nft_fib_ipv6.c: reject
   * routes by their type, LOCAL with iif/oif when the address is the
   * device's, else MULTICAST/UNICAST/UNSPEC by the address; cgen/addrtype.ts)
   */
  | { kind: 'addrtype'; src?: { types: number; invert: boolean }; dst?: { types: number; invert: boolean }; limitIn: boolean; limitOut: boolean; fib?: true }
  /**
   * nft's `fib saddr|daddr [. iif|. oif] oif|oifname|check`: the device the
   * route lookup of the address gives (cgen/fibroute.ts), by index (0: none;
   * check exists/missing is != 0 / == 0) or by name patterns
   */
  | { kind: 'fibroute'; addr: 'saddr' | 'daddr'; dev?: 'iif' | 'oif'; indexes?: number[]; names?: { name: string; wildcard: boolean }[]; invert: boolean }
  /**
   * nft's `quota [over] N [used M]`: bytes (skb->len) counted into the rule's
   * state slot each time the packet reaches it, from `used`; matches while
   * the count is at most `bytes` (`over`: once it is beyond)
   */
  | { kind: 'quota'; bytes: number; over: boolean; used: number }
  /**
   * the TCP MSS option's value in [min, max], as xt_tcpmss reads it: an option of kind 2 and length 4 (others
   * skipped); without one the match fails (holds when inverted); a header or option area cut short drops the
   * packet. `nft`: as nft's `tcp option maxseg size` reads it: the first option of kind 2 ends the walk (no
   * match when its length is under 4 or runs past the header); no option, or a header that cannot be read,
   * matches neither the value nor its negation
   */
  | { kind: 'tcpmss'; min: number; max: number; invert: boolean; nft?: true }
  /** ECN: the IP header's ECT bits, and (with -p tcp) the TCP ECE and CWR flags */
  | { kind: 'ecn'; ect?: { value: number; invert: boolean }; ece?: { invert: boolean }; cwr?: { invert: boolean } }
  /** (the connection's mark & mask) == value; no connection: no match */
  | { kind: 'connmark'; value: number; mask: number; invert: boolean }
  /** (skb->mark & mask) == value */
  | { kind: 'mark'; value: number; mask: number; invert: boolean }
  /** link-layer packet type: 0 host (unicast), 1 broadcast, 2 multicast, 3 otherhost */
  | { kind: 'pkttype'; type: number; invert: boolean }
  /** DSCP: the upper six bits of the IPv4 TOS byte / IPv6 traffic class */
  | { kind: 'dscp'; value: number; invert: boolean }
  /**
   * nft's `meta iif`/`oif`: the packet's input/output device is one of these interface indexes (the
   * index nft resolved the name to when the rule was added); a hook without that device reads index 0
   */
  | { kind: 'ifindex'; dir: 'in' | 'out'; indexes: number[]; invert: boolean }
  /**
   * nft's payload fields (`ip id`, `tcp window`, `sctp vtag`, ...): ((the `size` bytes at `offset` of the
   * network or transport header, big-endian) >> shift) & mask in one of the ranges. A transport field needs
   * its bytes in the packet (nft's load fails, no match); the transport header is where nft finds it (after
   * IPv6 extension headers; an IPv4 later fragment's payload is read there, an IPv6 one's IPv6 header).
   */
  | { kind: 'payload'; base: 'nh' | 'th'; offset: number; size: 1 | 2 | 4; shift: number; mask: number; ranges: Range[]; invert: boolean }
  /** nft's `ip6 nexthdr`: the fixed IPv6 header's next-header field (not the protocol behind extension headers) in one of the ranges */
  | { kind: 'nexthdr'; ranges: Range[]; invert: boolean }
  /** (TOS byte / traffic class & mask) == value */
  | { kind: 'tos'; value: number; mask: number; invert: boolean }
  /** token bucket as the kernel's xt_limit: avg in 1/10000 s per packet (XT_LIMIT_SCALE), burst in packets */
  | {
    kind: 'limit'; avg: number; burst: number;
    /** nft's `limit rate over`: matches when the bucket has no credit (a packet with credit takes it and does not match) */
    over?: boolean;
  }
  /** random: probability as a 31-bit fraction (0x80000000 = always); nth: every (stored minus one) and the starting packet */
  | { kind: 'statistic'; mode: 'random'; probability: number; invert: boolean }
  | { kind: 'statistic'; mode: 'nth'; every: number; packet: number; invert: boolean };

export type HashlimitMode = 'srcip' | 'srcport' | 'dstip' | 'dstport';
export interface OwnerRange { min: number; max: number; invert: boolean }
export interface PortMatch { range: Range; invert: boolean }
export interface TcpFlagsMatch { mask: number; comp: number; invert: boolean }
/** host-order unsigned 32-bit bounds, inclusive */
export interface IpRange { from: number; to: number; invert: boolean }
/** IPv6 bounds as four host-order u32 words each, inclusive */
export interface Ip6Range { from6: number[]; to6: number[]; invert: boolean }
export const isRange6 = (r: IpRange | Ip6Range): r is Ip6Range => 'from6' in r;

/** Connection tracking states, in the order iptables prints them. */
export const CT_STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED'] as const;
export type CtState = (typeof CT_STATES)[number];
/** --ctstate also takes the NAT status of the connection, printed after the others */
export const CT_MATCH_STATES = [...CT_STATES, 'SNAT', 'DNAT'] as const;
export type CtMatchState = (typeof CT_MATCH_STATES)[number];
/** --ctstatus names and their IPS_* bits, in iptables' printing order */
export const CT_STATUS_BITS: ReadonlyArray<[string, number]> = [['EXPECTED', 1], ['SEEN_REPLY', 2], ['ASSURED', 4], ['CONFIRMED', 8]];

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string }
  /** no target: the rule only counts */
  | { kind: 'none' }
  /**
   * LOG: a non-terminating target; the packet is described to the system log
   * (by `bpftables logd`, the text the kernel's LOG target writes) and goes on
   * to the next rule. flags are the kernel's NF_LOG_* bits.
   */
  | { kind: 'log'; level: number; prefix: string; flags: number }
  /** REJECT: drop, and answer the sender with `with` (an ICMP error or a TCP reset) */
  | { kind: 'reject'; with: RejectType };

/** LOG flags (the kernel's NF_LOG_*), as iptables -L prints them in "LOG flags N". */
export const LOG_FLAGS = { TCPSEQ: 0x01, TCPOPT: 0x02, IPOPT: 0x04, UID: 0x08, MACDECODE: 0x20 } as const;
/** The kernel's default LOG level (warning). */
export const LOG_DEFAULT_LEVEL = 4;

/** REJECT answers, by the name iptables-save prints. */
export type RejectType =
  | 'icmp-net-unreachable' | 'icmp-host-unreachable' | 'icmp-port-unreachable' | 'icmp-proto-unreachable'
  | 'icmp-net-prohibited' | 'icmp-host-prohibited' | 'icmp-admin-prohibited'
  | 'icmp6-no-route' | 'icmp6-adm-prohibited' | 'icmp6-addr-unreachable' | 'icmp6-port-unreachable'
  | 'icmp6-policy-fail' | 'icmp6-reject-route' | 'tcp-reset';

/** Every match of every rule of the table. */
export function tableMatches(t: Table): Match[] {
  // plain loops, not a generator: this walks every rule of big tables several times per compile
  const out: Match[] = [];
  for (const c of t.chains) for (const r of c.rules) for (const m of r.matches) out.push(m);
  return out;
}

/**
 * The questions below take a table, or the list of its matches when the
 * caller asks several (compileTable walks a big table once, not once per question).
 */
export type MatchesOf = Table | readonly Match[];
const matchList = (x: MatchesOf): readonly Match[] => ('chains' in x ? tableMatches(x) : x);

/** Does any rule of the table use a match of this kind? */
export function usesMatch(x: MatchesOf, kind: Match['kind']): boolean {
  if ('chains' in x) {
    for (const c of x.chains) for (const r of c.rules) for (const m of r.matches) if (m.kind === kind) return true;
    return false;
  }
  return x.some((m) => m.kind === kind);
}

/** The names the table's matches of one kind refer to: ipsets (set), hashlimit tables, recent lists. */
function namesOf(x: MatchesOf, kind: 'set' | 'hashlimit' | 'recent'): Set<string> {
  const names = new Set<string>();
  for (const m of matchList(x)) if (m.kind === kind) names.add(m.name);
  return names;
}
export const setsUsed = (x: MatchesOf): Set<string> => namesOf(x, 'set');
export const hashlimitTables = (x: MatchesOf): Set<string> => namesOf(x, 'hashlimit');
export const recentTables = (x: MatchesOf): Set<string> => namesOf(x, 'recent');

/** Does any rule of the table ask for address types (the local routing table's mirror)? */
export const usesAddrtype = (x: MatchesOf): boolean => usesMatch(x, 'addrtype');

/**
 * A rule. Plain rule lines (a blocklist's, a service list's) are parsed
 * into columns instead (xlate/packed.ts): such a rule is a PackedRule, whose
 * fields are getters over its block's row; code that copies a rule's fields
 * uses plainRule() there, as a spread does not copy getters.
 */
export interface Rule {
  ip: IpPart;
  matches: Match[];
  verdict: Verdict;
  counters: Counters;
  src?: SourceRef;
}

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export function emptyFilterTable(family: Family): Table {
  return {
    name: 'filter',
    family,
    chains: BUILTIN_CHAINS.map((name) => ({ name, policy: 'ACCEPT' as Policy, counters: { packets: 0, bytes: 0 }, rules: [] })),
  };
}

export function isBuiltin(name: string): name is BuiltinChain {
  return (BUILTIN_CHAINS as readonly string[]).includes(name);
}

/** Does any rule read the connection's status or direction (beyond its state)? */
export function needsCtDetails(x: MatchesOf): boolean {
  return matchList(x).some((m) => m.kind === 'connmark' || (m.kind === 'conntrack'
    && (m.status !== undefined || m.dir !== undefined || m.ctstate.includes('SNAT') || m.ctstate.includes('DNAT') || ctTupleFields(m).length > 0)));
}

/** Conntrack options that read the connection's tuples or timeout (besides state, status and direction). */
export const CT_TUPLE_OPTIONS = ['proto', 'origsrc', 'origdst', 'replsrc', 'repldst', 'origsrcport', 'origdstport', 'replsrcport', 'repldstport', 'expire'] as const;
export function ctTupleFields(m: Extract<Match, { kind: 'conntrack' }>): (typeof CT_TUPLE_OPTIONS)[number][] {
  return CT_TUPLE_OPTIONS.filter((k) => m[k] !== undefined);
}


/**
 * How many bytes of the transport header a match with `short: 'nomatch'`
 * reads, as nft's payload loads read them: a field past the end of the
 * header fails the load and the rule does not match. Undefined for
 * iptables' matches (no `short`), which need the whole header.
 */
export function l4Need(m: Extract<Match, { kind: 'tcp' | 'udp' | 'icmp' | 'icmp6' | 'multiport' }>): number | undefined {
  if (!m.short) return undefined;
  switch (m.kind) {
    case 'tcp': case 'udp': return m.kind === 'tcp' && m.flags ? 14 : m.dport ? 4 : m.sport ? 2 : 0;
    case 'multiport': return m.dir === 'src' ? 2 : 4;
    default: return m.codeMin > 0 || m.codeMax < 255 ? 2 : 1;
  }
}
