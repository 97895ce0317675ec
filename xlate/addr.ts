/**
 * Address text ⇄ IR numbers. IPv4: one host-order u32.
 * IPv6 addresses as the IR holds them: four host-order unsigned 32-bit
 * words (word 0 = the first four bytes). Parsing follows inet_pton (hex
 * groups, one `::`, a trailing dotted quad), printing follows glibc's
 * inet_ntop (lower case, the first longest run of two or more zero groups
 * as `::`, IPv4-mapped and -compatible addresses with a dotted quad), which
 * is what ip6tables prints.
 */

export type Words6 = number[];

/** A dotted quad: four groups of one to three decimal digits, each at most 255 (leading zeros allowed). */
export function parseIpv4(text: string): number | undefined {
  // a scanner, not a regex: this runs once per address of every rule restored
  const n = text.length;
  if (n < 7 || n > 15) return undefined;
  let value = 0, group = 0, digits = 0, groups = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return undefined;
      group = group * 10 + (c - 48);
    } else if (c === 46) {
      if (digits === 0 || group > 255 || ++groups > 4) return undefined;
      value = value * 256 + group;
      group = 0; digits = 0;
    } else return undefined;
  }
  return groups === 4 ? value : undefined;
}
export function fmtIpv4(a: number): string {
  return [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
}


export function parseIpv6(text: string): Words6 | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || text.length > 45) return undefined;
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (f.includes('.')) {
        if (i !== fields.length - 1) return undefined;
        const v4 = parseIpv4(f);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(f)) return undefined;
        out.push(parseInt(f, 16));
      }
    }
    return out;
  };
  let g: number[];
  if (dbl >= 0) {
    if (text.slice(0, dbl).includes('.')) return undefined;
    const head = groups(text.slice(0, dbl));
    const tail = groups(text.slice(dbl + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    if (tail.length && text.slice(dbl + 2).split(':').slice(0, -1).some((f) => f.includes('.'))) return undefined;
    g = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groups(text);
    if (!all || all.length !== 8) return undefined;
    g = all;
  }
  return [0, 1, 2, 3].map((i) => ((g[2 * i]! << 16) | g[2 * i + 1]!) >>> 0);
}

export function fmtIpv6(w: Words6): string {
  const g: number[] = [];
  for (const x of w) g.push(x >>> 16, x & 0xffff);
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (g[i] === 0) {
      if (cur.base < 0) cur = { base: i, len: 1 }; else cur.len++;
    } else if (cur.base >= 0) {
      if (best.base < 0 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (cur.base >= 0 && (best.base < 0 || cur.len > best.len)) best = cur;
  if (best.base >= 0 && best.len < 2) best = { base: -1, len: 0 };
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (best.base >= 0 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && g[5] === 0xffff))) {
      s += fmtIpv4(w[3]!);
      break;
    }
    s += g[i]!.toString(16);
  }
  if (best.base >= 0 && best.base + best.len === 8) s += ':';
  return s;
}

/** The mask of an IPv4 /bits prefix (host order). */
export const prefixMask4 = (bits: number): number => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

/**
 * The fewest aligned blocks [start, prefix length] that together hold
 * exactly the addresses lo..hi of a `width`-bit space (32: IPv4, 128: IPv6;
 * addresses as unsigned numbers).
 */
export function rangeBlocks(lo: bigint, hi: bigint, width: number): [bigint, number][] {
  const out: [bigint, number][] = [];
  const all = 1n << BigInt(width);
  while (lo <= hi) {
    // the largest block that starts at lo (its size divides lo) and ends by hi
    let size = lo === 0n ? all : lo & -lo;
    while (lo + size - 1n > hi) size >>= 1n;
    out.push([lo, width - (size.toString(2).length - 1)]);
    lo += size;
  }
  return out;
}

/** The mask of a /bits prefix. */
export function prefixMask6(bits: number): Words6 {
  return [0, 1, 2, 3].map((i) => {
    const b = Math.max(0, Math.min(32, bits - 32 * i));
    return prefixMask4(b);
  });
}

/** Prefix length of a contiguous mask, or undefined. */
export function maskBits6(m: Words6): number | undefined {
  let bits = 0;
  let ended = false;
  for (const w of m) {
    for (let b = 31; b >= 0; b--) {
      const set = ((w >>> b) & 1) === 1;
      if (set && ended) return undefined;
      if (set) bits++; else ended = true;
    }
  }
  return bits;
}

export const and6 = (a: Words6, m: Words6): Words6 => a.map((x, i) => (x & m[i]!) >>> 0);
export const isZero6 = (a: Words6): boolean => a.every((x) => x === 0);
export const eq6 = (a: Words6, b: Words6): boolean => a.every((x, i) => x === b[i]);
/** -1, 0 or 1 as a 128-bit unsigned comparison. */
export function cmp6(a: Words6, b: Words6): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}
