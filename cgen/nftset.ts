/**
 * nft's named address sets as maps (IR match `nftset`), pure: the set's
 * elements as the keys emitSetMatch (cgen/match.ts) looks the packet's
 * address up with. A set without `flags interval` holds addresses: a hash
 * of them (ipset's hash:ip key). One with it holds prefixes and ranges: an
 * LPM trie of prefixes (hash:net's key), each range cut into the fewest
 * aligned blocks that cover it exactly. The value is ipset's expiry word,
 * 0: the element never expires.
 */
import type { Match } from '../xlate/ir';
import { parseIpv4, rangeBlocks } from '../xlate/addr';
import { addrElementRange, bigToWords6 } from '../xlate/nft-sets';
import type { MapSpecOut } from './prefilter';

type NftSetMatch = Extract<Match, { kind: 'nftset' }>;
type SetMatch = Extract<Match, { kind: 'set' }>;

const BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_LPM_TRIE = 11, BPF_F_NO_PREALLOC = 1;
const VALUE_SIZE = 8;

/** The map a rule's set match looks up: one per set of the compiled table (a compiled table holds one nft table's chains). */
export const nftSetMapName = (name: string): string => `nftset:${name}`;

/** The ipset match the lookup is made as: hash:ip without `flags interval`, hash:net with it. */
export function asSetMatch(m: NftSetMatch): SetMatch {
  return { kind: 'set', name: m.name, dirs: [m.side], invert: m.invert, setType: m.interval ? 'hash:net' : 'hash:ip', setFamily: m.family };
}

/** An address (an unsigned number) in network order at `at`. */
function writeAddr(buf: Buffer, at: number, v: bigint, family: 4 | 6): void {
  if (family === 4) { buf.writeUInt32BE(Number(v), at); return; }
  bigToWords6(v).forEach((w, i) => buf.writeUInt32BE(w, at + 4 * i));
}

/** The map of the set a match names, filled with its elements. */
export function nftSetMap(m: NftSetMatch): MapSpecOut {
  const a = m.family === 4 ? 4 : 16;
  const name = nftSetMapName(m.name);
  if (!m.interval) {
    const n = m.elements.length;
    const keys = Buffer.alloc(a * n);
    for (let i = 0; i < n; i++) {
      const e = m.elements[i]!;
      const v4 = m.family === 4 ? parseIpv4(e) : undefined;
      if (v4 !== undefined) keys.writeUInt32BE(v4, i * a);
      else writeAddr(keys, i * a, addrElementRange(e, m.family)[0], m.family);
    }
    return { name, type: BPF_MAP_TYPE_HASH, keySize: a, valueSize: VALUE_SIZE, maxEntries: n, flags: 0, keys, values: Buffer.alloc(VALUE_SIZE * n), count: n };
  }
  const width = a * 8;
  const blocks: [bigint, number][] = [];
  for (const e of m.elements) {
    const [lo, hi] = addrElementRange(e, m.family);
    if (lo === hi) blocks.push([lo, width]);
    else for (const b of rangeBlocks(lo, hi, width)) blocks.push(b);
  }
  const n = blocks.length, ks = 4 + a;
  const keys = Buffer.alloc(ks * n);
  blocks.forEach(([start, bits], i) => { keys.writeUInt32LE(bits, i * ks); writeAddr(keys, i * ks + 4, start, m.family); });
  return { name, type: BPF_MAP_TYPE_LPM_TRIE, keySize: ks, valueSize: VALUE_SIZE, maxEntries: n, flags: BPF_F_NO_PREALLOC, keys, values: Buffer.alloc(VALUE_SIZE * n), count: n };
}
