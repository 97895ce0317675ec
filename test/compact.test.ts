/**
 * Compact hash tables (cgen/compact.ts), pure: every key given is found at
 * its position, keys not given are not, buckets stay within the scan, the
 * layout's bounds hold what the program relies on; and a table for keys that
 * cannot be spread is refused. The program's side of the same search runs
 * in the verdict-model, exact-jumps and fast-append tests (kernel).
 */
import t from 'tap';
import { bucketOf, buildCompact, compactFind, SCAN_MAX } from '../cgen/compact';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

/** distinct keys, as (hi, lo) pairs; `make(i)` the i-th candidate */
function keys(n: number, make: (i: number) => [number, number]): { his: Uint32Array; los: Uint32Array } {
  const seen = new Set<string>();
  const his: number[] = [], los: number[] = [];
  for (let i = 0; his.length < n; i++) {
    const [hi, lo] = make(i);
    const id = `${hi >>> 0},${lo >>> 0}`;
    if (seen.has(id)) continue;
    seen.add(id);
    his.push(hi >>> 0);
    los.push(lo >>> 0);
  }
  return { his: Uint32Array.from(his), los: Uint32Array.from(los) };
}

const cases: { name: string; n: number; wide: boolean; make: (i: number) => [number, number] }[] = [
  { name: 'random addresses', n: 20000, wide: false, make: ((r) => () => [0, r()])(rng(1)) as (i: number) => [number, number] },
  { name: 'consecutive addresses', n: 5000, wide: false, make: (i) => [0, 0x0a000000 + i] },
  { name: 'addresses differing in their high bytes only', n: 4096, wide: false, make: (i) => [0, ((i << 20) | 7) >>> 0] },
  { name: 'one /16 with strides of 256', n: 256, wide: false, make: (i) => [0, 0xc0a80000 + i * 256] },
  { name: 'address and port (48 bits)', n: 10000, wide: true, make: ((r) => (i: number) => { const a = 0x0a600000 + (i >> 4); return [a >>> 16, (((a & 0xffff) << 16) | (r() & 0xffff)) >>> 0]; })(rng(2)) as (i: number) => [number, number] },
  { name: 'one address, every port', n: 4000, wide: true, make: (i) => [0x0a00, (0x00010000 | 0) + i] },
  { name: 'address, port, protocol (56 bits)', n: 3000, wide: true, make: (i) => [(0x0a000001 + i) >>> 8, ((((0x0a000001 + i) & 0xff) << 24) | (443 << 8) | 6) >>> 0] },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { his, los } = keys(c.n, c.make);
    const table = buildCompact(his, los, c.wide, true);
    if (!table) { t.fail('no table'); return; }
    const l = table.layout;
    t.ok(l.scan >= 1 && l.scan <= SCAN_MAX, `longest bucket ${l.scan} of at most ${SCAN_MAX}`);
    t.equal(l.count, c.n);
    t.equal(l.entry, (c.wide ? 8 : 4) + 8, 'entry: key and value');
    t.equal(l.at % 8, 0, 'entries 8-byte aligned');
    t.ok(l.at >= 4 * ((1 << l.bits) + 1), 'entries after the bucket bounds');
    t.equal(table.bytes.length, l.at + l.entry * (l.count + l.scan - 1), 'room for the unrolled steps past the last entry');
    const b = table.bytes;
    let misplaced = 0, longest = 0;
    for (let k = 0; k < 1 << l.bits; k++) {
      const s = b.readUInt32LE(4 * k), e = b.readUInt32LE(4 * k + 4);
      if (e < s || e > l.count) misplaced++;
      longest = Math.max(longest, e - s);
    }
    t.equal(misplaced, 0, 'bucket bounds ordered and within the entries');
    t.equal(longest, l.scan, 'scan is the longest bucket');
    t.equal(b.readUInt32LE(4 * (1 << l.bits)), l.count, 'the last bound is the count');
    let lost = 0, wrong = 0;
    const positions = new Set<number>();
    for (let i = 0; i < c.n; i++) {
      const p = compactFind(l, b, his[i]!, los[i]!);
      if (p < 0) lost++;
      else if (p !== table.position[i]) wrong++;
      positions.add(table.position[i]!);
      // every key lies in its own bucket's range
      const k = bucketOf(l, his[i]!, los[i]!);
      if (p < b.readUInt32LE(4 * k) || p >= b.readUInt32LE(4 * k + 4)) wrong++;
    }
    t.equal(lost, 0, 'every key found');
    t.equal(wrong, 0, 'each at its position, in its bucket');
    t.equal(positions.size, c.n, 'positions distinct');
    // keys not in the table: neighbours, and random ones
    const have = new Set(Array.from({ length: c.n }, (_, i) => `${his[i]},${los[i]}`));
    const r = rng(99);
    let found = 0, tried = 0;
    for (let i = 0; i < 20000; i++) {
      const j = i % c.n;
      const probe: [number, number] = i % 2 ? [his[j]!, (los[j]! + 1) >>> 0] : [c.wide ? r() & 0xffffff : 0, r()];
      if (have.has(`${probe[0]},${probe[1]}`)) continue;
      tried++;
      if (compactFind(l, b, probe[0], probe[1]) >= 0) found++;
    }
    t.ok(tried > 10000, `${tried} absent keys tried`);
    t.equal(found, 0, 'no absent key found');
  });
}

t.test('the same keys make the same table', async (t) => {
  const { his, los } = keys(3000, ((r) => () => [0, r()])(rng(5)) as (i: number) => [number, number]);
  const a = buildCompact(his, los, false, true)!, b = buildCompact(his, los, false, true)!;
  t.same(a.layout, b.layout);
  t.ok(a.bytes.equals(b.bytes));
});

t.test('a table without values holds keys only', async (t) => {
  const { his, los } = keys(500, (i) => [0, i * 3]);
  const x = buildCompact(his, los, false, false)!;
  t.equal(x.layout.entry, 4);
  t.equal(x.layout.valued, false);
  t.ok(los.every((lo) => compactFind(x.layout, x.bytes, 0, lo) >= 0));
});

t.test('keys that no hash spreads within the scan are refused', async (t) => {
  // 2000 random keys in at most 4096 buckets: some two share one
  const { his, los } = keys(2000, ((r) => () => [0, r()])(rng(7)) as (i: number) => [number, number]);
  t.equal(buildCompact(his, los, false, true, 1), undefined, 'refused at a scan of 1');
  t.ok(buildCompact(his, los, false, true), 'taken at the usual scan');
});
