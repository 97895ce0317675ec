/**
 * nft named address sets as maps (cgen/nftset.ts): the blocks a range is
 * cut into, the keys of each kind of set, and what the IR means by them
 * (the model, the checker).
 */
import t from 'tap';
import { nftSetMap } from '../cgen/nftset';
import { rangeBlocks } from '../xlate/addr';
import { evaluate, type PacketView } from '../xlate/eval';
import { covers } from '../xlate/check';
import type { Match, Rule } from '../xlate/ir';
import { addrElementRange } from '../xlate/nft-sets';

type NftSetMatch = Extract<Match, { kind: 'nftset' }>;
const set = (elements: string[], interval: boolean, family: 4 | 6 = 4, invert = false): NftSetMatch => ({ kind: 'nftset', name: 's', side: 'src', family, interval, elements, invert });

t.test('a range is cut into the fewest aligned blocks that hold exactly it', async (t) => {
  t.same(rangeBlocks(5n, 9n, 32), [[5n, 32], [6n, 31], [8n, 31]], '5-9: 5, 6/31, 8/31');
  t.same(rangeBlocks(0n, 0xffffffffn, 32), [[0n, 0]], 'everything: one block');
  t.same(rangeBlocks(7n, 7n, 32), [[7n, 32]], 'one address');
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let k = 0; k < 300; k++) {
    const a = BigInt(rnd() % 100000), b = a + BigInt(rnd() % 5000);
    const blocks = rangeBlocks(a, b, 32);
    let next = a, ok = true;
    for (const [start, bits] of blocks) {
      const size = 1n << BigInt(32 - bits);
      if (start !== next || start % size !== 0n) ok = false;
      next = start + size;
    }
    if (!ok || next !== b + 1n || blocks.length > 64) { t.fail(`${a}-${b}: ${JSON.stringify(blocks.map(([s, l]) => `${s}/${l}`))}`); return; }
  }
  t.pass('300 random ranges: contiguous aligned blocks, exactly the range, at most 2 per bit');
  t.same(rangeBlocks(1n, (1n << 128n) - 2n, 128).length, 254, 'IPv6: ::1 to the last but one, 2 blocks per bit but the ends');
});

t.test('the keys of each kind of set', async (t) => {
  const plain = nftSetMap(set(['10.0.0.1', '10.0.0.2'], false));
  t.match(plain, { type: 1, keySize: 4, valueSize: 8, count: 2, maxEntries: 2, flags: 0 }, 'no interval: a hash of addresses');
  t.equal(plain.keys.toString('hex'), '0a0000010a000002', 'addresses in network order');
  t.equal(plain.values.toString('hex'), '0'.repeat(32), 'values: no expiry');
  const iv = nftSetMap(set(['10.0.0.1', '10.0.1.0/24', '10.0.2.5-10.0.2.6'], true));
  t.match(iv, { type: 11, keySize: 8, count: 4, flags: 1 }, 'interval: an LPM trie (not preallocated), a range in blocks');
  t.equal(iv.keys.toString('hex'), ['200000000a000001', '180000000a000100', '200000000a000205', '200000000a000206'].join(''), 'prefix length (host order) then the address');
  const v6 = nftSetMap(set(['fd00::1', 'fd00:1::/64'], true, 6));
  t.equal(v6.keys.toString('hex'), ['80000000fd000000000000000000000000000001', '40000000fd000001000000000000000000000000'].join(''), 'IPv6 keys');
  t.match(nftSetMap(set([], true)), { count: 0, keys: Buffer.alloc(0) }, 'an empty set: no keys');
  t.same(addrElementRange('fd00::1-fd00::9', 6), [0xfd000000000000000000000000000001n, 0xfd000000000000000000000000000009n], 'an IPv6 range element');
});

t.test('the model and the checker read a set as its elements', async (t) => {
  const rule = (m: NftSetMatch, verdict: 'accept' | 'drop' = 'drop'): Rule => ({ ip: {}, matches: [m], verdict: { kind: verdict }, counters: { packets: 0, bytes: 0 } });
  const table = (m: NftSetMatch) => ({ name: 'filter' as const, family: 4 as const, chains: [{ name: 'INPUT', policy: 'ACCEPT' as const, counters: { packets: 0, bytes: 0 }, rules: [rule(m)] }, { name: 'FORWARD', policy: 'ACCEPT' as const, counters: { packets: 0, bytes: 0 }, rules: [] }, { name: 'OUTPUT', policy: 'ACCEPT' as const, counters: { packets: 0, bytes: 0 }, rules: [] }] });
  const pkt = (saddr: number): PacketView => ({ saddr, daddr: 0x0a000001, proto: 17, ttl: 64, totlen: 28, fragoff: 0, skblen: 28, l4avail: 8, sport: 1, dport: 2, tcpflags: 0, icmptype: 0, icmpcode: 0, in: 'eth0', out: '', ct: 'INVALID' });
  const m = set(['10.0.0.1', '10.0.2.5-10.0.2.9'], true);
  t.equal(evaluate(table(m), 'INPUT', pkt(0x0a000207)).verdict, 'DROP', 'inside a range: in the set');
  t.equal(evaluate(table(m), 'INPUT', pkt(0x0a00020a)).verdict, 'ACCEPT', 'past it: not');
  t.equal(evaluate(table({ ...m, invert: true }), 'INPUT', pkt(0xc0000201)).verdict, 'DROP', '!=, an address not in the set');
  t.ok(covers(rule(m), rule({ ...m })), 'the same set covers itself');
  t.notOk(covers(rule(m), rule({ ...m, name: 't' })), 'another set does not');
  t.notOk(covers(rule(m), rule({ ...m, invert: true })), 'nor its negation');
});
