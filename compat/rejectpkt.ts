/**
 * REJECT's answers, built as the kernel's REJECT target builds them
 * (nf_reject_ipv4/ipv6 for TCP resets, icmp_send/icmpv6_send for ICMP
 * errors): the same header fields, quote length and refusals (no answer to
 * a reset, an ICMP error, a non-first fragment, a broadcast or multicast
 * packet). Pure: the environment (local addresses, source selection, TTL,
 * rate limits) comes in as arguments.
 */
import { csum } from './probes';
import type { EventRecord } from './logtext';
import type { RejectSpec } from '../xlate/targets';

export interface RejectEnv {
  /** does the namespace own this address (4 or 16 bytes)? */
  isLocal(addr: Buffer): boolean;
  /** is it a broadcast address of one of the namespace's IPv4 networks (or 255.255.255.255)? */
  isBroadcast(addr: Buffer): boolean;
  /** the source address the routing table picks towards `dst` */
  sourceFor(dst: Buffer): Buffer | undefined;
  /** default TTL / hop limit (net.ipv4.ip_default_ttl, net.ipv6.conf.all.hop_limit) */
  ttl: number;
  hopLimit: number;
}

/** A packet to send through a raw socket (headers included) to `dest`. */
export interface Answer { family: 4 | 6; packet: Buffer; dest: Buffer; icmp: boolean }

const HOOK_INPUT = 1, HOOK_OUTPUT = 3;
const ICMP_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);
/** Quoted bytes: 576 - 20 - 8 (IPv4), 1280 - 40 - 8 (IPv6). */
const QUOTE4 = 548, QUOTE6 = 1232;

function ipv4Header(src: Buffer, dst: Buffer, proto: number, tos: number, ttl: number, df: boolean, payloadLen: number): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45; h[1] = tos;
  h.writeUInt16BE(20 + payloadLen, 2);
  // ID 0: the kernel picks one for packets without DF, as it does for its own ICMP errors
  h.writeUInt16BE(df ? 0x4000 : 0, 6);
  h[8] = ttl; h[9] = proto;
  src.copy(h, 12); dst.copy(h, 16);
  h.writeUInt16BE((~csum(h)) & 0xffff, 10);
  return h;
}

function l4Sum(src: Buffer, dst: Buffer, proto: number, seg: Buffer, at: number): void {
  const pseudo = src.length === 4 ? Buffer.alloc(12) : Buffer.alloc(40);
  if (src.length === 4) { src.copy(pseudo, 0); dst.copy(pseudo, 4); pseudo[9] = proto; pseudo.writeUInt16BE(seg.length, 10); }
  else { src.copy(pseudo, 0); dst.copy(pseudo, 16); pseudo.writeUInt32BE(seg.length, 32); pseudo[39] = proto; }
  seg.writeUInt16BE(0, at);
  seg.writeUInt16BE((~csum(seg, csum(pseudo))) & 0xffff, at);
}

/** The reset for a TCP segment at `th` (payload length `datalen`), as nf_reject_ip(6)_tcphdr_put writes it. */
function resetSegment(p: Buffer, th: number, datalen: number): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(p.readUInt16BE(th + 2), 0);
  t.writeUInt16BE(p.readUInt16BE(th), 2);
  const flags = p[th + 13]!;
  if (flags & 0x10) {
    t.writeUInt32BE(p.readUInt32BE(th + 8), 4);
    t[13] = 0x04;
  } else {
    const seq = p.readUInt32BE(th + 4);
    t.writeUInt32BE((seq + ((flags & 0x02) ? 1 : 0) + ((flags & 0x01) ? 1 : 0) + datalen) >>> 0, 8);
    t[13] = 0x14;
  }
  t[12] = 5 << 4;
  return t;
}

/** The upper-layer header of an IPv6 packet past its extension headers (ipv6_skip_exthdr), or undefined. */
function ipv6Upper(p: Buffer): { proto: number; off: number; fragment: boolean } | undefined {
  let nh = p[6]!, off = 40, fragment = false;
  for (let i = 0; i < 64 && [0, 43, 44, 51, 60].includes(nh); i++) {
    if (off + 8 > p.length) return undefined;
    if (nh === 44) {
      if (p.readUInt16BE(off + 2) & 0xfff8) fragment = true;
      nh = p[off]!; off += 8;
      if (fragment) break;
    } else if (nh === 51) { const len = (p[off + 1]! + 2) * 4; nh = p[off]!; off += len; }
    else { const len = (p[off + 1]! + 1) * 8; nh = p[off]!; off += len; }
  }
  return { proto: nh, off, fragment };
}

const isMulticast6 = (a: Buffer): boolean => a[0] === 0xff;
const isUnspecified6 = (a: Buffer): boolean => a.every((b) => b === 0);

/** What the kernel's REJECT would send for the record's packet, or undefined when it sends nothing. */
export function rejectAnswer(r: EventRecord, spec: RejectSpec, env: RejectEnv): Answer | undefined {
  const p = r.packet;
  if (r.family === 4) {
    if (p.length < 20) return undefined;
    const ihl = (p[0]! & 0xf) * 4;
    const saddr = p.subarray(12, 16), daddr = p.subarray(16, 20);
    if (p.readUInt16BE(6) & 0x1fff) return undefined;
    if (r.pkttype === 1 || r.pkttype === 2 || daddr[0]! >= 224 || env.isBroadcast(daddr)) return undefined;
    if (!spec.icmp) {
      if (p[9] !== 6 || p.length < ihl + 20) return undefined;
      if (p[ihl + 13]! & 0x04) return undefined;
      const doff = (p[ihl + 12]! >> 4) * 4;
      const tcp = resetSegment(p, ihl, r.skblen - ihl - doff);
      l4Sum(daddr, saddr, 6, tcp, 16);
      return { family: 4, packet: Buffer.concat([ipv4Header(daddr, saddr, 6, 0, env.ttl, true, 20), tcp]), dest: Buffer.from(saddr), icmp: false };
    }
    if (p[9] === 1 && (p.length < ihl + 1 || p[ihl]! > 18 || ICMP_ERROR_TYPES.has(p[ihl]!))) return undefined;
    if (r.hook !== 2 && r.pkttype !== 0) return undefined;
    const src = r.hook === HOOK_INPUT || (r.hook === HOOK_OUTPUT && env.isLocal(daddr)) ? Buffer.from(daddr) : env.sourceFor(saddr);
    if (!src) return undefined;
    const quote = p.subarray(0, Math.min(r.skblen, QUOTE4, p.length));
    const icmp = Buffer.concat([Buffer.from([spec.icmp.type, spec.icmp.code, 0, 0, 0, 0, 0, 0]), quote]);
    icmp.writeUInt16BE((~csum(icmp)) & 0xffff, 2);
    const tos = (p[1]! & 0x1e) | 0xc0;
    return { family: 4, packet: Buffer.concat([ipv4Header(src, saddr, 1, tos, env.ttl, false, icmp.length), icmp]), dest: Buffer.from(saddr), icmp: true };
  }
  if (p.length < 40) return undefined;
  const saddr = p.subarray(8, 24), daddr = p.subarray(24, 40);
  const up = ipv6Upper(p);
  if (!spec.icmp) {
    if (isMulticast6(saddr) || isMulticast6(daddr) || isUnspecified6(saddr)) return undefined;
    if (!up || up.fragment || up.proto !== 6 || p.length < up.off + 20) return undefined;
    if (p[up.off + 13]! & 0x04) return undefined;
    const doff = (p[up.off + 12]! >> 4) * 4;
    const tcp = resetSegment(p, up.off, r.skblen - up.off - doff);
    l4Sum(daddr, saddr, 6, tcp, 16);
    return { family: 6, packet: Buffer.concat([ipv6Header(daddr, saddr, 6, env.hopLimit, tcp.length), tcp]), dest: Buffer.from(saddr), icmp: false };
  }
  if (isMulticast6(daddr) || (r.hook !== 2 && r.pkttype !== 0)) return undefined;
  if (isUnspecified6(saddr) || isMulticast6(saddr)) return undefined;
  // never answer an ICMPv6 error (or what cannot be told apart from one)
  if (up && !up.fragment && up.proto === 58 && (p.length < up.off + 1 || p[up.off]! < 128)) return undefined;
  const src = env.isLocal(daddr) ? Buffer.from(daddr) : env.sourceFor(saddr);
  if (!src) return undefined;
  const quote = p.subarray(0, Math.min(r.skblen, QUOTE6, p.length));
  const icmp = Buffer.concat([Buffer.from([spec.icmp.type, spec.icmp.code, 0, 0, 0, 0, 0, 0]), quote]);
  l4Sum(src, saddr, 58, icmp, 2);
  return { family: 6, packet: Buffer.concat([ipv6Header(src, saddr, 58, env.hopLimit, icmp.length), icmp]), dest: Buffer.from(saddr), icmp: true };
}

function ipv6Header(src: Buffer, dst: Buffer, nexthdr: number, hopLimit: number, payloadLen: number): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(6 << 28, 0);
  h.writeUInt16BE(payloadLen, 4);
  h[6] = nexthdr; h[7] = hopLimit;
  src.copy(h, 8); dst.copy(h, 24);
  return h;
}

/**
 * The kernel's ICMP rate limits for the errors REJECT sends: per peer, a
 * token bucket of `ratelimit` ms per message with a burst of six
 * (XRLIM_BURST_FACTOR), and the global bucket (icmp_msgs_per_sec, burst
 * icmp_msgs_burst). Loopback peers are exempt as in the kernel.
 */
export class IcmpRateLimit {
  private peers = new Map<string, { tokens: number; last: number }>();
  private global: { tokens: number; last: number };
  constructor(readonly ratelimitMs: number, readonly perSec: number, readonly burst: number, private now: () => number = () => Date.now()) {
    this.global = { tokens: burst, last: now() };
  }
  allow(peer: Buffer, loopback: boolean): boolean {
    const t = this.now();
    if (this.perSec > 0) {
      const g = this.global;
      g.tokens = Math.min(this.burst, g.tokens + ((t - g.last) * this.perSec) / 1000);
      g.last = t;
      if (g.tokens < 1) return false;
    }
    if (!loopback && this.ratelimitMs > 0) {
      const key = peer.toString('hex');
      const max = 6 * this.ratelimitMs;
      const st = this.peers.get(key) ?? { tokens: max, last: t };
      st.tokens = Math.min(max, st.tokens + (t - st.last));
      st.last = t;
      this.peers.set(key, st);
      if (st.tokens < this.ratelimitMs) return false;
      st.tokens -= this.ratelimitMs;
      if (this.peers.size > 4096) this.peers.delete(this.peers.keys().next().value!);
    }
    if (this.perSec > 0) this.global.tokens -= 1;
    return true;
  }
}
