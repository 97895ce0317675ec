/**
 * The prologue's reading of the packet's network and transport headers into
 * the summary (cgen/summary.ts). Two ways to the bytes, with the same result:
 *
 *   linear: when the kernel allows it (KernelLayout.linearLoads), straight
 *     from skb->data, which the verifier types as read-only untrusted memory
 *     (the JIT guards each load against faults), after checking that the
 *     bytes lie in the skb's linear area (skb->len - skb->data_len). It
 *     covers an IPv4 header, or an IPv6 header followed directly by the
 *     transport header, and a transport header of at least 20 readable
 *     bytes. Anything else goes the other way, from the start.
 *   dynptr: bpf_dynptr_from_skb, then bpf_dynptr_slice and
 *     bpf_dynptr_read, which handle any skb (and the IPv6 extension-header
 *     walk). The kfunc calls cost several times the linear loads (about 50
 *     ns a packet on the development machine, against 7).
 *
 * Programs with -m tcpmss, which reads the TCP options through the dynptr,
 * take the dynptr way only; LOG and REJECT records make a dynptr of their own
 * (cgen/events.ts). Pure.
 */
import { Asm, Helper, type Linked, link, NF_ACCEPT, R0, R1, R2, R3, R4, R5, R6, R7, R8, R10 } from './asm';
import type { KernelLayout } from './btf';
import { FRAME, S } from './summary';

export interface HeaderOptions {
  family: 4 | 6;
  /** some match reads the transport header (emitL4) */
  l4: boolean;
  /** nft payload matches: keep the raw header words */
  raw: boolean;
  /** nft's extension-header walk (it stops at AH) */
  stopAtAuth: boolean;
  /** try the linear way first */
  linear: boolean;
}

/**
 * Emit the header reading (r6 = ctx, r7 = skb on entry; r6..r8 are clobbered).
 * The packet goes to `unparsable` when its IP header cannot be read, and on to
 * `done` (placed by the caller right after) otherwise.
 */
export function emitHeaders(a: Asm, k: KernelLayout, o: HeaderOptions, unparsable: string, done: string): void {
  if (o.linear) {
    const viaDynptr = a.fresh('viadynptr');
    emitLinear(a, k, o, viaDynptr, done);
    a.label(viaDynptr);
  }
  a.movReg(R1, R7).mov64(R2, 0).movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR });
  a.callKfunc(k.kfuncDynptrFromSkb);
  a.jmp('jne', R0, 0, unparsable);
  if (o.family === 6) emitIp6Header(a, k, unparsable, done, o.raw, o.stopAtAuth); else emitIp4Header(a, k, unparsable, o.raw);
  if (o.l4) emitL4(a, k, done, o.raw);
}

/**
 * The linear way (see above): on to `done` with the summary filled as the
 * dynptr way fills it, or to `fallback` (r7 = skb kept) when a header is not
 * wholly in the linear area or the IPv6 header is followed by an extension header.
 */
function emitLinear(a: Asm, k: KernelLayout, o: HeaderOptions, fallback: string, done: string): void {
  const sum = FRAME.SUMMARY;
  // r2 = the linear length; a wrap (data_len > len never holds) would be negative
  a.ldx(4, R2, R7, k.skbLen).ldx(4, R3, R7, k.skbDataLen).alu64('sub', R2, R3);
  a.jmp('jslt', R2, o.family === 6 ? 40 : 20, fallback);
  a.ldx(8, R6, R7, k.skbData);
  if (o.family === 4) decodeIp4(a, o.raw);
  else {
    decodeIp6(a, o.raw);
    a.ldx(1, R1, R6, 6).stx(1, R10, sum + S.NEXTHDR, R1);
    for (const h of skippedHeaders(o.stopAtAuth)) a.jmp('jeq', R1, h, fallback);
    a.stx(1, R10, sum + S.PROTO, R1);
    a.mov64(R8, 40);
  }
  if (o.l4) {
    // as emitL4: L4AVAIL = max(skb->len - thoff, 0); none → no transport header; fewer than 20 → the dynptr way
    const nonneg = a.fresh('lnonneg');
    a.stx(2, R10, sum + S.THOFF, R8);
    a.ldx(4, R4, R10, sum + S.SKBLEN).alu64('sub', R4, R8);
    a.jmp('jsge', R4, 0, nonneg).mov64(R4, 0);
    a.label(nonneg);
    a.stx(4, R10, sum + S.L4AVAIL, R4);
    a.jmp('jeq', R4, 0, done);
    a.jmp('jlt', R4, 20, fallback);
    a.movReg(R3, R8).alu64('add', R3, { imm: 20 }).jmpReg('jsgt', R3, R2, fallback);
    a.alu64('add', R6, R8);
    decodeL4(a, o.raw);
  }
  a.ja(done);
}

/**
 * A program that reads a byte through skb->data, at a constant offset and
 * after adding a number: it loads only where the linear way works.
 */
export function linearLoadProbe(k: KernelLayout): Linked {
  const a = new Asm();
  a.ldx(8, R7, R1, 8).ldx(8, R6, R7, k.skbData).ldx(1, R1, R6, 0);
  a.ldx(4, R2, R7, k.skbLen).alu64('and', R2, { imm: 15 }).alu64('add', R6, R2).ldx(1, R1, R6, 0);
  a.mov64(R0, NF_ACCEPT).exit();
  return link(a);
}

/** IPv4 header (through the dynptr) → summary; r8 = transport header offset. */
function emitIp4Header(a: Asm, k: KernelLayout, unparsable: string, raw: boolean): void {
  // the IP header: bpf_dynptr_slice points into the packet when it is linear, else copies to the buffer
  a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.DYNPTR }).mov64(R2, 0);
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.IPHDR }).mov64(R4, 20);
  a.callKfunc(k.kfuncDynptrSlice);
  a.jmp('jeq', R0, 0, unparsable);
  a.movReg(R6, R0); // the context is not needed any more
  decodeIp4(a, raw);
}

/** The IPv4 header at r6 → summary; r8 = transport header offset. Reads through r6 and writes r1 and r8 only. */
function decodeIp4(a: Asm, raw: boolean): void {
  const sum = FRAME.SUMMARY;
  a.ldx(1, R8, R6, 0).alu64('and', R8, { imm: 0xf }).alu64('lsh', R8, { imm: 2 }); // thoff
  a.ldx(1, R1, R6, 9).stx(1, R10, sum + S.PROTO, R1);
  a.ldx(1, R1, R6, 8).stx(1, R10, sum + S.TTL, R1);
  a.ldx(1, R1, R6, 1).stx(1, R10, sum + S.TOS, R1);
  a.ldx(2, R1, R6, 2).toBe(R1, 16).stx(2, R10, sum + S.TOTLEN, R1);
  a.ldx(4, R1, R6, 12).toBe(R1, 32).stx(4, R10, sum + S.SADDR, R1);
  a.ldx(4, R1, R6, 16).toBe(R1, 32).stx(4, R10, sum + S.DADDR, R1);
  // (non-first fragments too: xt_ecn reads their "TCP header"; every other match checks FRAGOFF first)
  a.ldx(2, R1, R6, 6).toBe(R1, 16).alu64('and', R1, { imm: 0x1fff }).stx(2, R10, sum + S.FRAGOFF, R1);
  // nft's payload fields: the header's first 12 bytes as they are
  if (raw) for (const o of [0, 4, 8]) a.ldx(4, R1, R6, o).stx(4, R10, sum + S.NHRAW + o, R1);
}
/** Most IPv6 extension headers followed; a longer chain counts as unparsable (fails closed for rules with -p). */
export const MAX_EXT_HEADERS = 16;
/** Extension headers ip6tables skips while looking for the protocol (ipv6_find_hdr): hop-by-hop, routing, fragment, AH, destination options. */
const EXT_HEADERS = [0, 43, 44, 51, 60];

/**
 * IPv6 header → summary, then the extension-header walk of the kernel's
 * ipv6_find_hdr (as ip6tables uses it for -p): r7 = next header, r8 = its
 * offset. The walk ends at the first header that is not an extension header
 * (or "no next header", 59) with r8 = the transport header offset, or at a
 * non-first fragment (FRAGOFF set; no transport header for ip6tables, the
 * packet's start for nft, as ipv6_find_hdr leaves nft's offset), or fails
 * (truncated chain, an extension header behind a non-first fragment, or more
 * than MAX_EXT_HEADERS of them): NOPROTO = 1.
 */
/** The fixed IPv6 header at r6 → summary (all but the next header). Writes r1 only. */
function decodeIp6(a: Asm, raw: boolean): void {
  const sum = FRAME.SUMMARY;
  a.ldx(1, R1, R6, 7).stx(1, R10, sum + S.TTL, R1);
  a.ldx(2, R1, R6, 0).toBe(R1, 16).alu32('rsh', R1, { imm: 4 }).alu32('and', R1, { imm: 0xff }).stx(1, R10, sum + S.TOS, R1); // traffic class
  a.ldx(2, R1, R6, 4).toBe(R1, 16).alu64('add', R1, { imm: 40 }).alu64('and', R1, { imm: 0xffff }).stx(2, R10, sum + S.TOTLEN, R1);
  for (const [from, to] of [[8, S.SADDR6], [16, S.SADDR6 + 8], [24, S.DADDR6], [32, S.DADDR6 + 8]] as const) {
    a.ldx(8, R1, R6, from).toBe(R1, 64).stx(8, R10, sum + to, R1);
  }
  if (raw) a.ldx(4, R1, R6, 0).stx(4, R10, sum + S.NHRAW, R1); // version, traffic class, flow label
}

/** The extension headers the walk steps over (nft's walk stops at AH, its protocol). */
const skippedHeaders = (stopAtAuth: boolean): number[] => (stopAtAuth ? EXT_HEADERS.filter((h) => h !== 51) : EXT_HEADERS);

function emitIp6Header(a: Asm, k: KernelLayout, unparsable: string, done: string, raw: boolean, stopAtAuth: boolean): void {
  const sum = FRAME.SUMMARY;
  a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.DYNPTR }).mov64(R2, 0);
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.IPHDR }).mov64(R4, 40);
  a.callKfunc(k.kfuncDynptrSlice);
  a.jmp('jeq', R0, 0, unparsable);
  a.movReg(R6, R0);
  decodeIp6(a, raw);
  a.ldx(1, R7, R6, 6).stx(1, R10, sum + S.NEXTHDR, R7);
  a.mov64(R8, 40);
  const found = a.fresh('l4found'), bad = a.fresh('noproto'), nonFirst = a.fresh('fragment');
  const read = (len: number, at: number): void => {
    a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.EXTHDR + at }).mov64(R2, len);
    a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).movReg(R4, R8);
    if (at) a.alu64('add', R4, { imm: at });
    a.mov64(R5, 0).call(Helper.dynptr_read);
    a.jmp('jne', R0, 0, bad);
  };
  const skipped = skippedHeaders(stopAtAuth);
  for (let i = 0; i <= MAX_EXT_HEADERS; i++) {
    const ext = a.fresh('ext');
    for (const h of skipped) a.jmp('jeq', R7, h, ext);
    a.ja(found);
    a.label(ext);
    if (i === MAX_EXT_HEADERS) { a.ja(bad); break; }
    // the 2-byte generic part (next header, length), as the kernel reads it
    read(2, 0);
    const frag = a.fresh('frag'), auth = a.fresh('auth'), adv = a.fresh('adv');
    a.movReg(R3, R7);
    a.ldx(1, R7, R10, FRAME.EXTHDR);
    a.ldx(1, R2, R10, FRAME.EXTHDR + 1);
    a.jmp('jeq', R3, 44, frag).jmp('jeq', R3, 51, auth);
    a.alu64('add', R2, { imm: 1 }).alu64('lsh', R2, { imm: 3 }).ja(adv); // (hdrlen + 1) * 8
    a.label(auth).alu64('add', R2, { imm: 2 }).alu64('lsh', R2, { imm: 2 }).ja(adv); // (hdrlen + 2) * 4
    a.label(frag);
    read(2, 2);
    a.ldx(2, R1, R10, FRAME.EXTHDR + 2).toBe(R1, 16).alu64('and', R1, { imm: 0xfff8 });
    a.mov64(R2, 8);
    a.jmp('jeq', R1, 0, adv);
    // a non-first fragment: its protocol is the fragment header's next header, unless that is another extension header
    a.stx(2, R10, sum + S.FRAGOFF, R1).st(1, R10, sum + S.LATERFRAG, 1);
    for (const h of EXT_HEADERS) a.jmp('jeq', R7, h, bad);
    a.ja(nonFirst);
    a.label(adv).alu64('add', R8, R2);
  }
  a.label(bad).st(1, R10, sum + S.NOPROTO, 1).st(2, R10, sum + S.FRAGOFF, 0).ja(done);
  // nft on this kernel: ipv6_find_hdr returns a non-first fragment's protocol without setting the offset,
  // so nft's transport header is the packet's first byte (its loads read the IPv6 header); ip6tables'
  // matches read no transport header there (they check FRAGOFF first)
  a.label(nonFirst);
  if (stopAtAuth) a.mov64(R8, 0);
  else a.stx(1, R10, sum + S.PROTO, R7).ja(done);
  a.label(found).stx(1, R10, sum + S.PROTO, R7);
}

/**
 * Transport header (r8 = its offset) → ports, TCP flags, ICMP type and code;
 * L4AVAIL says how many of its bytes exist (iptables drops packets whose
 * header a match needs but cannot read).
 */
function emitL4(a: Asm, k: KernelLayout, done: string, raw: boolean): void {
  const sum = FRAME.SUMMARY;
  a.stx(2, R10, sum + S.THOFF, R8);
  // bytes after the IP header: min(skb->len - thoff, 20) of them
  const nonneg = a.fresh('nonneg'), capped = a.fresh('capped'), short = a.fresh('short'), decode = a.fresh('decode');
  a.ldx(4, R4, R10, sum + S.SKBLEN).alu64('sub', R4, R8);
  a.jmp('jsge', R4, 0, nonneg).mov64(R4, 0);
  a.label(nonneg);
  a.stx(4, R10, sum + S.L4AVAIL, R4);
  a.jmp('jle', R4, 20, capped).mov64(R4, 20);
  a.label(capped);
  a.jmp('jeq', R4, 0, done);
  a.jmp('jne', R4, 20, short);
  // a full 20 bytes: slice
  a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.DYNPTR }).movReg(R2, R8);
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.L4HDR }).mov64(R4, 20);
  a.callKfunc(k.kfuncDynptrSlice);
  a.movReg(R6, R0);
  a.jmp('jne', R0, 0, decode);
  a.st(4, R10, sum + S.L4AVAIL, 0).ja(done);
  // fewer: copy what there is into the zeroed buffer
  a.label(short);
  a.movReg(R2, R4).movReg(R1, R10).alu64('add', R1, { imm: FRAME.L4HDR });
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).movReg(R4, R8).mov64(R5, 0);
  a.call(Helper.dynptr_read);
  const readOk = a.fresh('l4ok');
  a.jmp('jeq', R0, 0, readOk);
  a.st(4, R10, sum + S.L4AVAIL, 0).ja(done);
  a.label(readOk);
  a.movReg(R6, R10).alu64('add', R6, { imm: FRAME.L4HDR });
  a.label(decode);
  decodeL4(a, raw);
}

/** 20 bytes of transport header at r6 → ports, TCP flags and data offset, ICMP type and code. Writes r1 only. */
function decodeL4(a: Asm, raw: boolean): void {
  const sum = FRAME.SUMMARY;
  a.ldx(2, R1, R6, 0).toBe(R1, 16).stx(2, R10, sum + S.SPORT, R1);
  a.ldx(2, R1, R6, 2).toBe(R1, 16).stx(2, R10, sum + S.DPORT, R1);
  a.ldx(1, R1, R6, 13).stx(1, R10, sum + S.TCPFLAGS, R1);
  a.ldx(1, R1, R6, 12).stx(1, R10, sum + S.DOFF, R1);
  a.ldx(4, R1, R6, 4).stx(4, R10, sum + S.L4W1, R1);
  a.ldx(1, R1, R6, 0).stx(1, R10, sum + S.ICMPTYPE, R1);
  a.ldx(1, R1, R6, 1).stx(1, R10, sum + S.ICMPCODE, R1);
  // nft's payload fields: the first 20 bytes as they are (zeros past the end of a short header)
  if (raw) for (const o of [0, 4, 8, 12, 16]) a.ldx(4, R1, R6, o).stx(4, R10, sum + S.L4RAW + o, R1);
}
