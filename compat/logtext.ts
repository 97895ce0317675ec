/**
 * The ring-buffer records of LOG and REJECT rules (cgen/events.ts), decoded,
 * and the line the kernel's LOG target would print for them: the same
 * fields, order, spelling and trailing space, for IPv4 and IPv6, including
 * ICMP errors with the packet they quote. Pure.
 */
import { ACTION_KIND, REC } from '../cgen/events';
import { LOG_FLAGS } from '../xlate/ir';

export interface EventRecord {
  kind: 'log' | 'reject';
  level: number;
  flags: number;
  /** index in REJECT_TYPES */
  reject: number;
  hook: number;
  family: 4 | 6;
  skblen: number;
  mark: number;
  in: string;
  out: string;
  prefix: string;
  devType: number;
  hardHeaderLen: number;
  /** the MAC header's first bytes (empty: none to print) */
  mac: Buffer;
  pkttype: number;
  /** more LOG/REJECT rules matched the packet than one hook could queue */
  lost: boolean;
  owner?: { uid: number; gid: number };
  /** the packet from its network header, as far as captured */
  packet: Buffer;
}

const cstring = (b: Buffer): string => {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('latin1');
};

export function parseRecord(b: Buffer): EventRecord {
  const caplen = b.readUInt16LE(REC.CAPLEN);
  const maclen = b.readUInt16LE(REC.MACLEN);
  return {
    kind: b[REC.KIND] === ACTION_KIND.REJECT ? 'reject' : 'log',
    level: b[REC.LEVEL]!, flags: b[REC.FLAGS]!, reject: b[REC.REJECT]!, hook: b[REC.HOOK]!, family: b[REC.FAMILY] === 6 ? 6 : 4,
    skblen: b.readUInt32LE(REC.SKBLEN), mark: b.readUInt32LE(REC.MARK),
    in: cstring(b.subarray(REC.IN, REC.IN + 16)), out: cstring(b.subarray(REC.OUT, REC.OUT + 16)),
    prefix: cstring(b.subarray(REC.PREFIX, REC.PREFIX + 32)),
    devType: b.readUInt16LE(REC.DEVTYPE), hardHeaderLen: b.readUInt16LE(REC.HHLEN),
    mac: Buffer.from(b.subarray(REC.MAC, REC.MAC + Math.min(maclen, 32))), pkttype: b[REC.PKTTYPE]!, lost: b[REC.LOST] === 1,
    owner: b[REC.UIDOK] === 1 ? { uid: b.readUInt32LE(REC.UID), gid: b.readUInt32LE(REC.GID) } : undefined,
    packet: Buffer.from(b.subarray(REC.DATA, REC.DATA + caplen)),
  };
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const HEX2 = (n: number): string => hex2(n).toUpperCase();
const ipv4 = (p: Buffer, o: number): string => `${p[o]}.${p[o + 1]}.${p[o + 2]}.${p[o + 3]}`;
const macText = (b: Buffer, o: number): string => [...b.subarray(o, o + 6)].map(hex2).join(':');

/** The packet as the kernel's skb_header_pointer sees it: bytes beyond the capture exist only up to skb->len. */
class View {
  constructor(readonly p: Buffer, readonly len: number) {}
  has(off: number, n: number): boolean { return off + n <= this.len && off + n <= this.p.length; }
}

/** "MAC=..." (or MACSRC/MACDST/MACPROTO with --log-macdecode on Ethernet) for packets that came in on a device. */
function macPart(r: EventRecord): string {
  if ((r.flags & LOG_FLAGS.MACDECODE) && r.devType === 1 /* ARPHRD_ETHER */ && r.mac.length >= 14) {
    return `MACSRC=${macText(r.mac, 6)} MACDST=${macText(r.mac, 0)} MACPROTO=${hex2(r.mac[12]!)}${hex2(r.mac[13]!)} `;
  }
  let s = 'MAC=';
  if (r.hardHeaderLen && r.mac.length) {
    const bytes: string[] = [];
    for (let i = 0; i < r.hardHeaderLen; i++) bytes.push(hex2(r.mac[i] ?? 0));
    s += bytes.join(':');
  }
  return `${s} `;
}

function tcpPart(v: View, fragment: boolean, off: number, flags: number): { text: string; stop: boolean } {
  let s = 'PROTO=TCP ';
  if (fragment) return { text: s, stop: false };
  const p = v.p;
  if (!v.has(off, 20)) return { text: `${s}INCOMPLETE [${v.len - off} bytes] `, stop: true };
  s += `SPT=${p.readUInt16BE(off)} DPT=${p.readUInt16BE(off + 2)} `;
  if (flags & LOG_FLAGS.TCPSEQ) s += `SEQ=${p.readUInt32BE(off + 4)} ACK=${p.readUInt32BE(off + 8)} `;
  s += `WINDOW=${p.readUInt16BE(off + 14)} `;
  s += `RES=0x${hex2(((p[off + 12]! & 0x0f) << 2) & 0xff)} `;
  const f = p[off + 13]!;
  for (const [bit, name] of [[0x80, 'CWR'], [0x40, 'ECE'], [0x20, 'URG'], [0x10, 'ACK'], [0x08, 'PSH'], [0x04, 'RST'], [0x02, 'SYN'], [0x01, 'FIN']] as const) {
    if (f & bit) s += `${name} `;
  }
  s += `URGP=${p.readUInt16BE(off + 18)} `;
  const doff = (p[off + 12]! >> 4) * 4;
  if ((flags & LOG_FLAGS.TCPOPT) && doff > 20) {
    const n = doff - 20;
    if (!v.has(off + 20, n)) return { text: `${s}OPT (TRUNCATED)`, stop: true };
    s += `OPT (${[...p.subarray(off + 20, off + 20 + n)].map(HEX2).join('')}) `;
  }
  return { text: s, stop: false };
}

function udpPart(v: View, proto: number, fragment: boolean, off: number): { text: string; stop: boolean } {
  let s = proto === 17 ? 'PROTO=UDP ' : 'PROTO=UDPLITE ';
  if (fragment) return { text: s, stop: false };
  if (!v.has(off, 8)) return { text: `${s}INCOMPLETE [${v.len - off} bytes] `, stop: true };
  const p = v.p;
  s += `SPT=${p.readUInt16BE(off)} DPT=${p.readUInt16BE(off + 2)} LEN=${p.readUInt16BE(off + 4)} `;
  return { text: s, stop: false };
}

/** TCP, UDP and UDP-Lite headers, alike in both families. */
function portsPart(v: View, proto: number, fragment: boolean, off: number, flags: number): { text: string; stop: boolean } {
  return proto === 6 ? tcpPart(v, fragment, off, flags) : udpPart(v, proto, fragment, off);
}

/** Bytes an ICMP message of each type needs for the kernel to describe it. */
const ICMP_REQUIRED: Record<number, number> = { 0: 4, 3: 28, 4: 28, 5: 28, 8: 4, 11: 28, 12: 28, 13: 20, 14: 20, 17: 12, 18: 12 };

/** The IPv4 part of a LOG line, from offset `at` (non-zero: the packet an ICMP error quotes). */
function ipv4Part(r: EventRecord, v: View, at: number): string {
  const p = v.p;
  if (!v.has(at, 20)) return 'TRUNCATED';
  const ihl = (p[at]! & 0xf) * 4;
  const fo = p.readUInt16BE(at + 6);
  const proto = p[at + 9]!;
  let s = `SRC=${ipv4(p, at + 12)} DST=${ipv4(p, at + 16)} `;
  s += `LEN=${p.readUInt16BE(at + 2)} TOS=0x${HEX2(p[at + 1]! & 0x1e)} PREC=0x${HEX2(p[at + 1]! & 0xe0)} TTL=${p[at + 8]} ID=${p.readUInt16BE(at + 4)} `;
  if (fo & 0x8000) s += 'CE ';
  if (fo & 0x4000) s += 'DF ';
  if (fo & 0x2000) s += 'MF ';
  const fragoff = fo & 0x1fff;
  if (fragoff) s += `FRAG:${fragoff} `;
  if ((r.flags & LOG_FLAGS.IPOPT) && ihl > 20) {
    if (!v.has(at + 20, ihl - 20)) return `${s}TRUNCATED`;
    s += `OPT (${[...p.subarray(at + 20, at + ihl)].map(HEX2).join('')}) `;
  }
  const l4 = at + ihl;
  switch (proto) {
    case 6: case 17: case 136: {
      const part = portsPart(v, proto, fragoff !== 0, l4, r.flags);
      s += part.text;
      if (part.stop) return s;
      break;
    }
    case 1: {
      s += 'PROTO=ICMP ';
      if (fragoff) break;
      if (!v.has(l4, 8)) { s += `INCOMPLETE [${v.len - l4} bytes] `; break; }
      const type = p[l4]!, code = p[l4 + 1]!;
      s += `TYPE=${type} CODE=${code} `;
      const need = ICMP_REQUIRED[type];
      if (type <= 18 && need && v.len - l4 < need) { s += `INCOMPLETE [${v.len - l4} bytes] `; break; }
      switch (type) {
        case 0: case 8: s += `ID=${p.readUInt16BE(l4 + 4)} SEQ=${p.readUInt16BE(l4 + 6)} `; break;
        case 12: s += `PARAMETER=${p[l4 + 4]} `; break;
        case 5: case 3: case 4: case 11:
          if (type === 5) s += `GATEWAY=${ipv4(p, l4 + 4)} `;
          if (at === 0) s += `[${ipv4Part(r, v, l4 + 8)}] `;
          if (type === 3 && code === 4) s += `MTU=${p.readUInt16BE(l4 + 6)} `;
          break;
      }
      break;
    }
    case 50: case 51: {
      s += `PROTO=${proto === 51 ? 'AH' : 'ESP'} `;
      if (fragoff) break;
      const need = proto === 51 ? 12 : 8, spiAt = proto === 51 ? 4 : 0;
      if (!v.has(l4, need)) { s += `INCOMPLETE [${v.len - l4} bytes] `; break; }
      s += `SPI=0x${p.readUInt32BE(l4 + spiAt).toString(16)} `;
      break;
    }
    default: s += `PROTO=${proto} `;
  }
  if (at === 0) s += trailer(r);
  return s;
}

function trailer(r: EventRecord): string {
  let s = '';
  if ((r.flags & LOG_FLAGS.UID) && r.owner) s += `UID=${r.owner.uid} GID=${r.owner.gid} `;
  if (r.mark) s += `MARK=0x${r.mark.toString(16)} `;
  return s;
}

/** Extension headers the kernel's LOG walks (nf_ip6_ext_hdr), besides "no next header". */
const IP6_EXT = new Set([0, 43, 44, 50, 51, 60]);

/** The IPv6 part of a LOG line from `at`; `recurse` is false inside an ICMPv6 error's quote. */
function ipv6Part(r: EventRecord, v: View, at: number, recurse: boolean): string {
  const p = v.p;
  if (!v.has(at, 40)) return 'TRUNCATED';
  const ipopt = (r.flags & LOG_FLAGS.IPOPT) !== 0;
  const w = p.readUInt32BE(at);
  let s = `SRC=${ip6Full(p, at + 8)} DST=${ip6Full(p, at + 24)} `;
  s += `LEN=${p.readUInt16BE(at + 4) + 40} TC=${(w >>> 20) & 0xff} HOPLIMIT=${p[at + 7]} FLOWLBL=${w & 0xfffff} `;
  let fragment = false;
  let ptr = at + 40;
  let cur = p[at + 6]!;
  while (cur !== 59 && IP6_EXT.has(cur)) {
    if (!v.has(ptr, 2)) return `${s}TRUNCATED`;
    if (ipopt) s += 'OPT ( ';
    let hdrlen: number;
    switch (cur) {
      case 44: {
        s += 'FRAG:';
        if (!v.has(ptr, 8)) return `${s}TRUNCATED `;
        const fo = p.readUInt16BE(ptr + 2);
        s += `${fo & 0xfff8} `;
        if (fo & 1) s += 'INCOMPLETE ';
        s += `ID:${p.readUInt32BE(ptr + 4).toString(16).padStart(8, '0')} `;
        if (fo & 0xfff8) fragment = true;
        hdrlen = 8;
        break;
      }
      case 60: case 43: case 0:
        if (fragment) return ipopt ? `${s})` : s;
        hdrlen = (p[ptr + 1]! + 1) * 8;
        break;
      case 51:
        if (ipopt) {
          s += 'AH ';
          if (fragment) return `${s})`;
          if (!v.has(ptr, 12)) return `${s}INCOMPLETE [${v.len - ptr} bytes] )`;
          s += `SPI=0x${p.readUInt32BE(ptr + 4).toString(16)} `;
        }
        hdrlen = (p[ptr + 1]! + 2) * 4;
        break;
      default: // ESP
        if (ipopt) {
          s += 'ESP ';
          if (fragment) return `${s})`;
          if (!v.has(ptr, 8)) return `${s}INCOMPLETE [${v.len - ptr} bytes] )`;
          s += `SPI=0x${p.readUInt32BE(ptr).toString(16)} )`;
        }
        return s;
    }
    if (ipopt) s += ') ';
    cur = p[ptr]!;
    ptr += hdrlen;
  }
  switch (cur) {
    case 6: case 17: case 136: {
      const part = portsPart(v, cur, fragment, ptr, r.flags);
      s += part.text;
      if (part.stop) return s;
      break;
    }
    case 58: {
      s += 'PROTO=ICMPv6 ';
      if (fragment) break;
      if (!v.has(ptr, 8)) return `${s}INCOMPLETE [${v.len - ptr} bytes] `;
      const type = p[ptr]!, code = p[ptr + 1]!;
      s += `TYPE=${type} CODE=${code} `;
      switch (type) {
        case 128: case 129: s += `ID=${p.readUInt16BE(ptr + 4)} SEQ=${p.readUInt16BE(ptr + 6)} `; break;
        case 130: case 131: case 132: break;
        case 4: case 1: case 2: case 3:
          if (type === 4) s += `POINTER=${p.readUInt32BE(ptr + 4).toString(16).padStart(8, '0')} `;
          if (recurse) s += `[${ipv6Part(r, v, ptr + 8, false)}] `;
          if (type === 2) s += `MTU=${p.readUInt32BE(ptr + 4)} `;
          break;
      }
      break;
    }
    default: s += `PROTO=${cur} `;
  }
  if (recurse) s += trailer(r);
  return s;
}

/** An IPv6 address as the kernel's %pI6 prints it: eight groups of four hex digits, uncompressed. */
const ip6Full = (p: Buffer, o: number): string => Array.from({ length: 8 }, (_, i) => p.readUInt16BE(o + 2 * i).toString(16).padStart(4, '0')).join(':');

/** The kernel LOG target's line for a record (without the syslog level marker and newline). */
export function logLine(r: EventRecord): string {
  let s = `${r.prefix}IN=${r.in} OUT=${r.out} `;
  if (r.in) s += macPart(r);
  const v = new View(r.packet, r.skblen);
  s += r.family === 6 ? ipv6Part(r, v, 0, true) : ipv4Part(r, v, 0);
  return s;
}
