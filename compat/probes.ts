/** Crafted IPv4 and IPv6 packets (with valid checksums) for the demo, verdict and differential tests. */
import { parseIpv6 } from '../xlate/addr';

export interface Ip4Spec {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  /** fragment offset in 8-byte units */
  fragOff?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  tos?: number;
  /** IP options bytes (multiple of 4) */
  options?: Buffer;
  payload: Buffer;
}

export function ip4(s: string): number {
  return s.split('.').reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

/** The Internet checksum's ones'-complement sum (not yet inverted), continuing from `initial`. */
export function csum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

export function ipPacket(p: Ip4Spec): Buffer {
  const opts = p.options ?? Buffer.alloc(0);
  const hl = 20 + opts.length;
  const b = Buffer.alloc(hl + p.payload.length);
  b[0] = 0x40 | (hl / 4);
  b[1] = p.tos ?? 0;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(p.id ?? 0, 4);
  b.writeUInt16BE(((p.dontFragment ? 1 : 0) << 14) | ((p.moreFragments ? 1 : 0) << 13) | (p.fragOff ?? 0), 6);
  b[8] = p.ttl ?? 64;
  b[9] = p.proto;
  b.writeUInt32BE(ip4(p.src), 12);
  b.writeUInt32BE(ip4(p.dst), 16);
  opts.copy(b, 20);
  b.writeUInt16BE((~csum(b.subarray(0, hl))) & 0xffff, 10);
  p.payload.copy(b, hl);
  return b;
}

function l4Checksum(src: string, dst: string, proto: number, seg: Buffer, off: number): void {
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(ip4(src), 0);
  pseudo.writeUInt32BE(ip4(dst), 4);
  pseudo[9] = proto;
  pseudo.writeUInt16BE(seg.length, 10);
  const c = (~csum(seg, csum(pseudo))) & 0xffff;
  seg.writeUInt16BE(c === 0 && proto === 17 ? 0xffff : c, off);
}

export interface TcpSpec { sport: number; dport: number; flags: number; seq?: number; ack?: number; payload?: Buffer; /** option bytes (padded to 4) */ options?: Buffer; window?: number; urg?: number }
export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32 } as const;

export function tcpSegment(src: string, dst: string, t: TcpSpec): Buffer {
  const pl = t.payload ?? Buffer.alloc(0);
  const opts = t.options ?? Buffer.alloc(0);
  const hl = 20 + Math.ceil(opts.length / 4) * 4;
  const b = Buffer.alloc(hl + pl.length);
  b.writeUInt16BE(t.sport, 0);
  b.writeUInt16BE(t.dport, 2);
  b.writeUInt32BE(t.seq ?? 1000, 4);
  b.writeUInt32BE(t.ack ?? 0, 8);
  b[12] = (hl / 4) << 4;
  b[13] = t.flags;
  b.writeUInt16BE(t.window ?? 65535, 14);
  b.writeUInt16BE(t.urg ?? 0, 18);
  opts.copy(b, 20);
  pl.copy(b, hl);
  l4Checksum(src, dst, 6, b, 16);
  return b;
}

export function udpDatagram(src: string, dst: string, sport: number, dport: number, payload: Buffer = Buffer.from('probe')): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  payload.copy(b, 8);
  l4Checksum(src, dst, 17, b, 6);
  return b;
}

export function icmpMessage(type: number, code: number, rest: Buffer = Buffer.alloc(4), payload: Buffer = Buffer.from('probe')): Buffer {
  const b = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, payload]);
  b.writeUInt16BE((~csum(b)) & 0xffff, 2);
  return b;
}

export type Probe = { name: string; packet: Buffer };

export function tcpPacket(src: string, dst: string, t: TcpSpec, extra: Partial<Ip4Spec> = {}): Buffer {
  return ipPacket({ src, dst, proto: 6, payload: tcpSegment(src, dst, t), ...extra });
}
export function udpPacket(src: string, dst: string, sport: number, dport: number, extra: Partial<Ip4Spec> = {}): Buffer {
  return ipPacket({ src, dst, proto: 17, payload: udpDatagram(src, dst, sport, dport), ...extra });
}
export function icmpPacket(src: string, dst: string, type: number, code: number, extra: Partial<Ip4Spec> = {}): Buffer {
  return ipPacket({ src, dst, proto: 1, payload: icmpMessage(type, code), ...extra });
}

/** The IPv4 packet without its last `bytes` bytes, its total length and checksum made to fit (what its headers announce, it no longer holds). */
export function cutIpv4(p: Buffer, bytes: number): Buffer {
  const cut = Buffer.from(p.subarray(0, p.length - bytes));
  cut.writeUInt16BE(cut.length, 2);
  fixIpChecksum(cut);
  return cut;
}

/** Recompute the IPv4 header checksum in place (after changing the ID, say). */
export function fixIpChecksum(p: Buffer): void {
  const hl = (p[0]! & 0xf) * 4;
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE((~csum(p.subarray(0, hl))) & 0xffff, 10);
}

/** IPv6 address text → its 16 bytes (via the IR's parser). */
export function ip6Bytes(s: string): Buffer {
  const w = parseIpv6(s);
  if (!w) throw new Error(`bad IPv6 address ${s}`);
  const b = Buffer.alloc(16);
  w.forEach((x, i) => b.writeUInt32BE(x, 4 * i));
  return b;
}

/** An IPv6 extension header: `type` is its own protocol number; the next-header byte is filled in by ip6Packet. */
export interface Ext6 { type: 0 | 43 | 44 | 51 | 60; bytes: Buffer }

/** Hop-by-hop or destination options padded with PadN to `len8` 8-byte units (at least 1). */
export function optionsHeader(type: 0 | 60, len8 = 1): Ext6 {
  const b = Buffer.alloc(8 * len8);
  b[1] = len8 - 1;
  b[2] = 1; // PadN
  b[3] = b.length - 4;
  return { type, bytes: b };
}
export function fragmentHeader(offset8: number, more: boolean, id = 0x1234): Ext6 {
  const b = Buffer.alloc(8);
  b.writeUInt16BE((offset8 << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(id, 4);
  return { type: 44, bytes: b };
}
/** AH with a 12-byte ICV: (len + 2) * 4 = 24 bytes. */
export function authHeader(): Ext6 {
  const b = Buffer.alloc(24);
  b[1] = 4;
  b.writeUInt32BE(0x100, 4);
  return { type: 51, bytes: b };
}
/** A type-4 (segment routing-like) routing header with segments left 0: processed and skipped. */
export function routingHeader(): Ext6 {
  const b = Buffer.alloc(8);
  b[2] = 4;
  return { type: 43, bytes: b };
}

export interface Ip6Spec {
  src: string;
  dst: string;
  /** protocol of the payload (after the extension headers) */
  proto: number;
  hopLimit?: number;
  /** the traffic class byte (DSCP and ECN) */
  trafficClass?: number;
  flowLabel?: number;
  ext?: Ext6[];
  payload: Buffer;
}

export function ip6Packet(p: Ip6Spec): Buffer {
  const ext = p.ext ?? [];
  const chain = ext.map((e, i) => {
    const b = Buffer.from(e.bytes);
    b[0] = i + 1 < ext.length ? ext[i + 1]!.type : p.proto;
    return b;
  });
  const body = Buffer.concat([...chain, p.payload]);
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32BE(((6 << 28) | (((p.trafficClass ?? 0) & 0xff) << 20) | ((p.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  b.writeUInt16BE(body.length, 4);
  b[6] = ext.length ? ext[0]!.type : p.proto;
  b[7] = p.hopLimit ?? 64;
  ip6Bytes(p.src).copy(b, 8);
  ip6Bytes(p.dst).copy(b, 24);
  body.copy(b, 40);
  return b;
}

/** TCP/UDP/ICMPv6 checksum over the IPv6 pseudo header, written at `off` of the segment. */
function l4Checksum6(src: string, dst: string, proto: number, seg: Buffer, off: number): void {
  const pseudo = Buffer.alloc(40);
  ip6Bytes(src).copy(pseudo, 0);
  ip6Bytes(dst).copy(pseudo, 16);
  pseudo.writeUInt32BE(seg.length, 32);
  pseudo[39] = proto;
  seg.writeUInt16BE(0, off);
  const c = (~csum(seg, csum(pseudo))) & 0xffff;
  seg.writeUInt16BE(c === 0 && proto === 17 ? 0xffff : c, off);
}

export function tcpSegment6(src: string, dst: string, t: TcpSpec): Buffer {
  const b = tcpSegment('0.0.0.0', '0.0.0.0', t);
  l4Checksum6(src, dst, 6, b, 16);
  return b;
}
export function udpDatagram6(src: string, dst: string, sport: number, dport: number, payload: Buffer = Buffer.from('probe')): Buffer {
  const b = udpDatagram('0.0.0.0', '0.0.0.0', sport, dport, payload);
  l4Checksum6(src, dst, 17, b, 6);
  return b;
}
/** `rest`: the four bytes after the checksum (an echo's identifier and sequence number) */
export function icmp6Message(src: string, dst: string, type: number, code: number, payload = Buffer.from('probe'), rest: Buffer = Buffer.alloc(4)): Buffer {
  const b = Buffer.concat([Buffer.from([type, code, 0, 0]), rest.subarray(0, 4), payload]);
  l4Checksum6(src, dst, 58, b, 2);
  return b;
}
export function tcp6Packet(src: string, dst: string, t: TcpSpec, extra: Partial<Ip6Spec> = {}): Buffer {
  return ip6Packet({ src, dst, proto: 6, payload: tcpSegment6(src, dst, t), ...extra });
}
export function udp6Packet(src: string, dst: string, sport: number, dport: number, extra: Partial<Ip6Spec> = {}): Buffer {
  return ip6Packet({ src, dst, proto: 17, payload: udpDatagram6(src, dst, sport, dport), ...extra });
}
export function icmp6Packet(src: string, dst: string, type: number, code: number, extra: Partial<Ip6Spec> = {}): Buffer {
  return ip6Packet({ src, dst, proto: 58, payload: icmp6Message(src, dst, type, code), ...extra });
}
