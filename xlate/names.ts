/**
 * Name tables iptables resolves itself (protocols it knows without
 * /etc/protocols, ICMP type names), plus the interface through which the
 * system databases (/etc/services, /etc/protocols) are consulted; parsing
 * stays pure by receiving a NameDb.
 */

export interface NameDb {
  /** port number of a service name for a protocol ("tcp", "udp", ...) */
  service(name: string, proto: string): number | undefined;
  protoByName(name: string): number | undefined;
  protoByNumber(num: number): string | undefined;
  /** service name of a port for a protocol (for listings without -n) */
  serviceByPort?(port: number, proto: string): string | undefined;
  /** host name of an address (for listings without -n); host-order u32 */
  hostByAddr?(addr: number): string | undefined;
  /** IPv4 addresses (host order) a host name resolves to, as for `-s name` */
  resolveHost?(name: string): number[];
  /** IPv6 addresses (four host-order words each) a host name resolves to, as for ip6tables' `-s name` */
  resolveHost6?(name: string): number[][];
  /** host name of an IPv6 address (for listings without -n) */
  hostByAddr6?(addr: number[]): string | undefined;
  /** user and group ids by name, and names by id (-m owner) */
  userId?(name: string): number | undefined;
  groupId?(name: string): number | undefined;
  userName?(id: number): string | undefined;
  groupName?(id: number): string | undefined;
  /** this namespace's interface index of a name, and name of an index (nft's meta iif/oif) */
  ifIndex?(name: string): number | undefined;
  ifName?(index: number): string | undefined;
  /** an ipset of this namespace (-m set): its type and family, or undefined when there is none */
  ipset?(name: string): { type: string; family: 4 | 6 } | undefined;
}

/** The protocols iptables knows by name even without /etc/protocols, in its own order. */
export const BUILTIN_PROTOS: ReadonlyArray<[string, number]> = [
  ['tcp', 6], ['sctp', 132], ['udp', 17], ['udplite', 136], ['icmp', 1], ['icmpv6', 58],
  ['ipv6-icmp', 58], ['esp', 50], ['ah', 51], ['ipv6-mh', 135], ['mh', 135], ['all', 0],
];

export const emptyNameDb: NameDb = {
  service: () => undefined,
  protoByName: () => undefined,
  protoByNumber: () => undefined,
};

/** C's (and iptables') unsigned reading, strtoul with base 0: decimal, 0x hex or 0 octal, within [0, max]. */
export function parseUintAny(text: string, max: number): number | undefined {
  if (!/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.test(text)) return undefined;
  const n = /^0[xX]/.test(text) ? parseInt(text.slice(2), 16) : /^0\d/.test(text) ? parseInt(text, 8) : Number(text);
  return n <= max ? n : undefined;
}

/**
 * A port as nft reads one (inet_service): a number in C's notation (0x for
 * hex, a leading 0 for octal; digits that are not octal after a 0, as in
 * 08, are read as decimal by the service lookup), else a service name (of
 * `proto`, then tcp, then udp). Undefined when it is neither; above 65535
 * callers say nft's "Service out of range".
 */
export function nftServiceNumber(text: string, db: NameDb, proto = 'tcp'): number | undefined {
  const n = parseUintAny(text, Infinity) ?? (/^\d+$/.test(text) ? Number(text) : undefined);
  return n ?? db.service(text, proto) ?? db.service(text, 'tcp') ?? db.service(text, 'udp');
}

export function protoNumber(name: string, db: NameDb): number | undefined {
  const lower = name.toLowerCase();
  const b = BUILTIN_PROTOS.find(([n]) => n === lower);
  if (b) return b[1];
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n <= 255 ? n : undefined;
  }
  return db.protoByName(lower);
}

/** The name iptables-save prints for a protocol number. */
export function protoName(num: number, db: NameDb): string {
  // like iptables: the system database first, then its own table
  const sys = db.protoByNumber(num);
  if (sys) return sys;
  const b = BUILTIN_PROTOS.find(([, n]) => n === num);
  return b ? b[0] : String(num);
}

/** ICMP type names: [name, type, codeMin, codeMax] */
export const ICMP_TYPES: ReadonlyArray<[string, number, number, number]> = [
  ['any', 0xff, 0, 0xff],
  ['echo-reply', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff],
  ['network-unreachable', 3, 0, 0],
  ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2],
  ['port-unreachable', 3, 3, 3],
  ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5],
  ['network-unknown', 3, 6, 6],
  ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9],
  ['host-prohibited', 3, 10, 10],
  ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12],
  ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14],
  ['precedence-cutoff', 3, 15, 15],
  ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff],
  ['network-redirect', 5, 0, 0],
  ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2],
  ['TOS-host-redirect', 5, 3, 3],
  ['echo-request', 8, 0, 0xff],
  ['router-advertisement', 9, 0, 0xff],
  ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff],
  ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1],
  ['parameter-problem', 12, 0, 0xff],
  ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1],
  ['timestamp-request', 13, 0, 0xff],
  ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff],
  ['address-mask-reply', 18, 0, 0xff],
];

/** ICMPv6 type names (ip6tables' table, aliases after the name they stand for): [name, type, codeMin, codeMax] */
export const ICMP6_TYPES: ReadonlyArray<[string, number, number, number]> = [
  ['destination-unreachable', 1, 0, 0xff],
  ['no-route', 1, 0, 0],
  ['communication-prohibited', 1, 1, 1],
  ['beyond-scope', 1, 2, 2],
  ['address-unreachable', 1, 3, 3],
  ['port-unreachable', 1, 4, 4],
  ['failed-policy', 1, 5, 5],
  ['reject-route', 1, 6, 6],
  ['packet-too-big', 2, 0, 0xff],
  ['time-exceeded', 3, 0, 0xff],
  ['ttl-exceeded', 3, 0, 0xff],
  ['ttl-zero-during-transit', 3, 0, 0],
  ['ttl-zero-during-reassembly', 3, 1, 1],
  ['parameter-problem', 4, 0, 0xff],
  ['bad-header', 4, 0, 0],
  ['unknown-header-type', 4, 1, 1],
  ['unknown-option', 4, 2, 2],
  ['echo-request', 128, 0, 0xff],
  ['ping', 128, 0, 0xff],
  ['echo-reply', 129, 0, 0xff],
  ['pong', 129, 0, 0xff],
  ['mld-listener-query', 130, 0, 0xff],
  ['mld-listener-report', 131, 0, 0xff],
  ['mld-listener-done', 132, 0, 0xff],
  ['mld-listener-reduction', 132, 0, 0xff],
  ['router-solicitation', 133, 0, 0xff],
  ['router-advertisement', 134, 0, 0xff],
  ['neighbour-solicitation', 135, 0, 0xff],
  ['neighbor-solicitation', 135, 0, 0xff],
  ['neighbour-advertisement', 136, 0, 0xff],
  ['neighbor-advertisement', 136, 0, 0xff],
  ['redirect', 137, 0, 0xff],
];
