/**
 * native/bpf's map reads and writes in bulk, against the kernel: every entry
 * read back (batch lookups, and key by key where a map type has none), batch
 * updates.
 */
import t from 'tap';
import { close, mapClear, mapCreate, mapEntries, mapKeys, mapLookup, MapType, mapUpdate, mapUpdateBatch } from '../native/bpf';
import { requireKernel } from './helpers/env';

const hex = (e: { key: Buffer; value: Buffer }): string => `${e.key.toString('hex')}=${e.value.toString('hex')}`;

t.test('mapEntries reads every entry of a hash map, a batch at a time', async (t) => {
  if (!requireKernel(t)) return;
  const fd = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 20000, name: 'entries_t' });
  t.teardown(() => close(fd));
  t.same(mapEntries(fd, 4, 8), [], 'an empty map');
  // more entries than one batch holds (4096), written in one batch update
  const n = 10000;
  const keys = Buffer.alloc(4 * n), values = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i++) { keys.writeUInt32LE(i * 7 + 1, i * 4); values.writeBigUInt64LE(BigInt(i) * 1000003n, i * 8); }
  mapUpdateBatch(fd, keys, values, n);
  const got = mapEntries(fd, 4, 8);
  t.equal(got.length, n, 'as many entries as written');
  const want = Array.from({ length: n }, (_, i) => hex({ key: keys.subarray(i * 4, i * 4 + 4), value: values.subarray(i * 8, i * 8 + 8) })).sort();
  t.same(got.map(hex).sort(), want, 'each key with its value');
  const walked = mapKeys(fd, 4).map((key) => { const value = Buffer.alloc(8); mapLookup(fd, key, value); return hex({ key, value }); });
  t.same(walked, got.map(hex), 'in the order walking the keys gives');
  mapClear(fd, 4, 8);
  t.same(mapEntries(fd, 4, 8), [], 'mapClear leaves it empty');
  t.same(mapKeys(fd, 4), [], 'no key left to walk');
});

t.test('mapEntries reads an LPM trie too', async (t) => {
  if (!requireKernel(t)) return;
  const fd = mapCreate({ type: MapType.LPM_TRIE, keySize: 8, valueSize: 8, maxEntries: 100, name: 'entries_lpm', flags: 1 /* BPF_F_NO_PREALLOC */ });
  t.teardown(() => close(fd));
  const entries = [[24, '0a000100'], [16, '0a010000'], [32, 'c0a80001']] as const;
  for (const [len, addr] of entries) {
    const k = Buffer.alloc(8);
    k.writeUInt32LE(len, 0);
    Buffer.from(addr, 'hex').copy(k, 4);
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(BigInt(len));
    mapUpdate(fd, k, v);
  }
  const got = mapEntries(fd, 8, 8).map((e) => `${e.key.readUInt32LE(0)}/${e.key.subarray(4).toString('hex')}=${e.value.readBigUInt64LE(0)}`).sort();
  t.same(got, ['16/0a010000=16', '24/0a000100=24', '32/c0a80001=32']);
  mapClear(fd, 8, 8);
  t.same(mapEntries(fd, 8, 8), [], 'mapClear empties it');
});
