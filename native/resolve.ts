/** Host name → IPv4 addresses through libc's getaddrinfo (/etc/hosts, DNS, as iptables resolves them). */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const AddrInfo = koffi.struct('bpft_addrinfo', {
  ai_flags: 'int', ai_family: 'int', ai_socktype: 'int', ai_protocol: 'int', ai_addrlen: 'uint32_t',
  ai_addr: 'void *', ai_canonname: 'char *', ai_next: 'void *',
});
const getaddrinfo = libc.func('int getaddrinfo(const char *, const char *, bpft_addrinfo *, _Out_ void **)');
const freeaddrinfo = libc.func('void freeaddrinfo(void *)');

/** The name's IPv4 addresses (host order), in resolver order without duplicates; [] when it does not resolve. */
export function resolveIpv4(name: string): number[] {
  const hints = { ai_flags: 0, ai_family: 2 /* AF_INET */, ai_socktype: 1 /* one entry per address */, ai_protocol: 0, ai_addrlen: 0, ai_addr: null, ai_canonname: null, ai_next: null };
  const out: unknown[] = [null];
  if (getaddrinfo(name, null, hints, out) !== 0) return [];
  const addrs: number[] = [];
  try {
    for (let p = out[0]; p; ) {
      const ai = koffi.decode(p, AddrInfo) as { ai_addr: unknown; ai_next: unknown };
      const sa = koffi.decode(ai.ai_addr, koffi.array('uint8_t', 8)) as number[];
      const a = ((sa[4]! << 24) | (sa[5]! << 16) | (sa[6]! << 8) | sa[7]!) >>> 0;
      if (!addrs.includes(a)) addrs.push(a);
      p = ai.ai_next;
    }
  } finally { freeaddrinfo(out[0]); }
  return addrs;
}
