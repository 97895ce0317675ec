/**
 * The packet summary: the fields every matcher reads, decoded once per
 * packet by the hook program's prologue into its stack frame and passed to
 * user-chain subprograms by pointer (r1 → r9). Offsets are from the
 * summary's base; multi-byte numbers are host order. IPv4 and IPv6
 * programs share the layout: IPv6 fills SADDR6/DADDR6 instead of
 * SADDR/DADDR, PROTO is the protocol found behind the extension headers
 * (as ip6tables finds it), TTL the hop limit, TOTLEN the payload length +
 * 40, FRAGOFF the fragment offset in bytes (not 8-byte units).
 */
export const S = {
  SADDR: 0, // u32
  DADDR: 4, // u32
  PROTO: 8, // u8
  TTL: 9, // u8
  TOTLEN: 10, // u16, IP total length
  FRAGOFF: 12, // u16, fragment offset in 8-byte units
  CT: 14, // u8, CtBit set
  NOPROTO: 15, // u8, IPv6: 1 when the extension-header chain could not be followed to a protocol
  SKBLEN: 16, // u32, skb->len (what iptables counts as bytes)
  L4AVAIL: 20, // u32, bytes available after the IP header(s); IPv6: 0 for non-first fragments
  SPORT: 24, // u16
  DPORT: 26, // u16
  TCPFLAGS: 28, // u8
  ICMPTYPE: 29, // u8
  ICMPCODE: 30, // u8
  CTDIR: 31, // u8, 1 for a packet in the reply direction of its connection (read only when a rule asks)
  IN: 32, // char[16], input interface name (zeros if none)
  OUT: 48, // char[16], output interface name (zeros if none)
  SADDR6: 64, // IPv6 source: two u64, each host order (high half first), so prefixes and ranges compare as numbers
  DADDR6: 80, // IPv6 destination, likewise
  MARK: 96, // u32, skb->mark
  PKTTYPE: 100, // u8, packet type as xt_pkttype sees it (loopback folded into broadcast/multicast)
  TOS: 101, // u8, IPv4 TOS byte / IPv6 traffic class
  CTSTATUS: 102, // u16, the connection's IPS_* status bits (read only when a rule asks)
  MACSRC: 104, // u8[6], Ethernet source address (read only when the table uses -m mac)
  MACOK: 110, // u8, 1 when MACSRC holds the source of an Ethernet frame (xt_mac's conditions)
  ACTN: 111, // u8, LOG/REJECT records queued for logd (ACTS), ACT_LOST when more matched than fit
  CTPTR: 112, // u64, the packet's struct nf_conn address (read only when a rule asks for its tuples or timeout)
  THOFF: 120, // u16, offset of the transport header (after IPv6 extension headers)
  MSS: 122, // u16, the TCP MSS option's value (when MSSST is MSS_FOUND)
  ACTS: 124, // u32[ACT_SLOTS], action ids (index in the actions map) of the LOG/REJECT rules the packet met, in order
  MSSST: 156, // u8, what -m tcpmss found: MSS_NONE, MSS_FOUND or MSS_BAD (unparsable: the kernel drops)
  DOFF: 157, // u8, the TCP header's byte 12 (data offset in its upper four bits)
  OWNST: 158, // u8, the packet's socket for -m owner: OWNER_NONE, OWNER_NOFILE (a socket without a file) or OWNER_FILE
  HOOK: 159, // u8, the netfilter hook (1 input, 2 forward, 3 output), | HOOK_NOSK (cgen/recent.ts) for OUTPUT packets without a socket
  OWNUID: 160, // u32, the socket file's fsuid (OWNER_FILE)
  OWNGID: 164, // u32, its fsgid
  L4W1: 168, // u8[4], transport header bytes 4-7 as they are (hashlimit's "ports" of AH)
  LATERFRAG: 172, // u8, IPv6: 1 when the header walk met a non-first fragment's header (hashlimit's walk stops there)
  NEXTHDR: 173, // u8, IPv6: the fixed header's next-header field (nft's ip6 nexthdr)
  SKBDEV: 174, // u8, which device skb->dev is: SKBDEV_NONE, _IN, _OUT or _OTHER (read when a rule asks, nft's fib)
  FIBSKIP: 175, // u8, 1 when nft's fib takes the input device without a lookup (nft_fib_can_skip; read when a rule asks)
  IIF: 176, // u32, input device's ifindex (0 if none; read when a rule asks, nft's meta iif)
  OIF: 180, // u32, output device's ifindex (likewise, meta oif)
  NHRAW: 184, // u8[12], the network header's first bytes as they are (IPv4: 12, IPv6: 4; read when a rule asks, nft's payload fields)
  L4RAW: 196, // u8[20], the transport header's first 20 bytes as they are (zeros past the packet; likewise)
  SIZE: 216,
} as const;

/** Action records a packet can queue in one hook (more: the first ACT_SLOTS, and logd says some were lost). */
export const ACT_SLOTS = 8;
export const ACT_LOST = 0x80;
/** OWNST values */
export const OWNER_NONE = 0, OWNER_NOFILE = 1, OWNER_FILE = 2;
/** SKBDEV values: no device, the hook's input device, its output device, another one */
export const SKBDEV_NONE = 0, SKBDEV_IN = 1, SKBDEV_OUT = 2, SKBDEV_OTHER = 3;
/** MSSST values */
export const MSS_NONE = 0, MSS_FOUND = 1, MSS_BAD = 2;

/** Connection tracking state bits as decoded from skb->_nfct. */
export const CtBit = { INVALID: 1, NEW: 2, RELATED: 4, ESTABLISHED: 8, UNTRACKED: 16, SNAT: 32, DNAT: 64 } as const;

/** Frame layout of the hook program (offsets from r10). */
export const FRAME = {
  SUMMARY: -216,
  IPHDR: -256, // 40 bytes
  L4HDR: -280, // 24 bytes (IPHDR and L4HDR together: 64 bytes of TCP options for tcpmss, after the prologue's decoding)
  DYNPTR: -296, // struct bpf_dynptr, 16 bytes
  KEY: -304, // 8 bytes: prefilter keys; the action id being recorded in the epilogue
  XKEY: -320, // 16 bytes: exact-match keys; a rule's scratch space otherwise
  EXTHDR: -328, // 8 bytes: IPv6 extension header fields; also skb->head and skb->data read as numbers
  SKB: -336, // the struct sk_buff pointer, kept for the epilogue (LOG's MAC header)
  /** key slots in the frame of a rule function (global functions have their own stack) */
  FUNC_KEY: -8,
  FUNC_XKEY: -24, // also a rule's scratch space
} as const;

/** Subprogram return codes (the hook program returns NF verdicts 0/1 directly). */
export const RET_DROP = 0;
export const RET_ACCEPT = 1;
export const RET_CONTINUE = 2;
