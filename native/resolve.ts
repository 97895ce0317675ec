/** Host name → IPv4 or IPv6 addresses through libc's getaddrinfo (/etc/hosts, DNS, as iptables resolves them). */
import { ffi, libcFn } from './libc';

let addrInfo: unknown;
/** struct addrinfo, declared once (before getaddrinfo, whose prototype names it) */
const AddrInfo = (): unknown => (addrInfo ??= ffi().koffi.struct('bpft_addrinfo', {
  ai_flags: 'int', ai_family: 'int', ai_socktype: 'int', ai_protocol: 'int', ai_addrlen: 'uint32_t',
  ai_addr: 'void *', ai_canonname: 'char *', ai_next: 'void *',
}));
const declaredGetaddrinfo = libcFn('int getaddrinfo(const char *, const char *, bpft_addrinfo *, _Out_ void **)');
const getaddrinfo = (...args: unknown[]): unknown => { AddrInfo(); return declaredGetaddrinfo(...args); };
const freeaddrinfo = libcFn('void freeaddrinfo(void *)');

/** Raw socket addresses getaddrinfo gives for `name` in `family` (AF_INET 2, AF_INET6 10), `len` bytes each. */
function lookup(name: string, family: number, len: number): number[][] {
  const hints = { ai_flags: 0, ai_family: family, ai_socktype: 1 /* one entry per address */, ai_protocol: 0, ai_addrlen: 0, ai_addr: null, ai_canonname: null, ai_next: null };
  const out: unknown[] = [null];
  if (getaddrinfo(name, null, hints, out) !== 0) return [];
  const addrs: number[][] = [];
  try {
    for (let p = out[0]; p; ) {
      const ai = ffi().koffi.decode(p, AddrInfo() as never) as { ai_addr: unknown; ai_next: unknown };
      addrs.push(ffi().koffi.decode(ai.ai_addr, ffi().koffi.array('uint8_t', len)) as number[]);
      p = ai.ai_next;
    }
  } finally { freeaddrinfo(out[0]); }
  return addrs;
}

/** The name's IPv4 addresses (host order), in resolver order without duplicates; [] when it does not resolve. */
export function resolveIpv4(name: string): number[] {
  const addrs: number[] = [];
  for (const sa of lookup(name, 2, 8)) {
    const a = ((sa[4]! << 24) | (sa[5]! << 16) | (sa[6]! << 8) | sa[7]!) >>> 0;
    if (!addrs.includes(a)) addrs.push(a);
  }
  return addrs;
}

/** The name's IPv6 addresses (four host-order words each), in resolver order without duplicates. */
export function resolveIpv6(name: string): number[][] {
  const addrs: number[][] = [];
  for (const sa of lookup(name, 10, 24)) {
    const w = [0, 1, 2, 3].map((i) => ((sa[8 + 4 * i]! << 24) | (sa[9 + 4 * i]! << 16) | (sa[10 + 4 * i]! << 8) | sa[11 + 4 * i]!) >>> 0);
    if (!addrs.some((x) => x.every((v, i) => v === w[i]))) addrs.push(w);
  }
  return addrs;
}

const getnameinfo = libcFn('int getnameinfo(void *, uint32_t, _Out_ uint8_t *, uint32_t, void *, uint32_t, int)');
const NI_NAMEREQD = 8;

/** The host name of an address through libc's getnameinfo (/etc/hosts, DNS), as nft -N asks; undefined when it has none. */
export function reverseName(addr: Buffer): string | undefined {
  const sa = Buffer.alloc(addr.length === 4 ? 16 : 28);
  sa.writeUInt16LE(addr.length === 4 ? 2 : 10, 0);
  addr.copy(sa, addr.length === 4 ? 4 : 8);
  const host = Buffer.alloc(1025);
  if (getnameinfo(sa, sa.length, host, host.length, null, 0, NI_NAMEREQD) !== 0) return undefined;
  return host.subarray(0, host.indexOf(0)).toString('utf8');
}
