/** Crafted IPv4 packets (with valid checksums) for the demo, verdict and differential tests. */

export interface Ip4Spec {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  /** fragment offset in 8-byte units */
  fragOff?: number;
  moreFragments?: boolean;
  tos?: number;
  /** IP options bytes (multiple of 4) */
  options?: Buffer;
  payload: Buffer;
}

export function ip4(s: string): number {
  return s.split('.').reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

function csum(buf: Buffer, initial = 0): number {
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
  b.writeUInt16BE(((p.moreFragments ? 1 : 0) << 13) | (p.fragOff ?? 0), 6);
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

export interface TcpSpec { sport: number; dport: number; flags: number; seq?: number; ack?: number; payload?: Buffer }
export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32 } as const;

export function tcpSegment(src: string, dst: string, t: TcpSpec): Buffer {
  const pl = t.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(20 + pl.length);
  b.writeUInt16BE(t.sport, 0);
  b.writeUInt16BE(t.dport, 2);
  b.writeUInt32BE(t.seq ?? 1000, 4);
  b.writeUInt32BE(t.ack ?? 0, 8);
  b[12] = 5 << 4;
  b[13] = t.flags;
  b.writeUInt16BE(65535, 14);
  pl.copy(b, 20);
  l4Checksum(src, dst, 6, b, 16);
  return b;
}

export function udpDatagram(src: string, dst: string, sport: number, dport: number, payload = Buffer.from('probe')): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  payload.copy(b, 8);
  l4Checksum(src, dst, 17, b, 6);
  return b;
}

export function icmpMessage(type: number, code: number, rest = Buffer.alloc(4), payload = Buffer.from('probe')): Buffer {
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

/** Recompute the IPv4 header checksum in place (after changing the ID, say). */
export function fixIpChecksum(p: Buffer): void {
  const hl = (p[0]! & 0xf) * 4;
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE((~csum(p.subarray(0, hl))) & 0xffff, 10);
}
