/**
 * The per-packet fast paths that need kernel support, proved on this kernel:
 * the prologue reads headers in the skb's linear area without the dynptr
 * kfuncs (cgen/headers.ts; the verdict-model tests run every packet through
 * both ways), and the dispatcher reaches each generation's program through a
 * tail call with a constant index (cgen/dispatcher.ts).
 */
import t from 'tap';
import { Asm, type Linked, link, NF_ACCEPT, NF_DROP, patchMaps } from '../cgen/asm';
import { dispatcher, GEN_MAP, HOOK_SLOTS, NFT_SLOTS, PROGS_MAP } from '../cgen/dispatcher';
import { compileTable } from '../cgen/program';
import { kernel } from '../compat/engine';
import { systemNameDb } from '../compat/namedb';
import { TCP, tcpPacket } from '../compat/probes';
import { ATTACH_NETFILTER, close, mapCreate, MapType, mapUpdate, PROG_TYPE_NETFILTER, progLoad, testRunNf, u32Key } from '../native/bpf';
import { parseRestore } from '../xlate/restore';
import { requireKernel } from './helpers/env';

const load = (l: Linked | Buffer): number => progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: Buffer.isBuffer(l) ? l : l.bytes, name: 'bpft_test' });
const verdict = (v: number): Linked => link(new Asm().mov64(0, v).exit());

t.test('this kernel lets the prologue read linear headers without the dynptr', async (t) => {
  if (!requireKernel(t)) return;
  const k = kernel();
  // Linux 6.18 types skb->data as read-only untrusted memory; an older kernel refuses the probe (then every
  // program takes the dynptr way, which the verdict-model tests also run)
  t.equal(k.linearLoads, true, 'the feature probe loads');
  const text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n';
  const table = parseRestore(text, { file: 'linear', db: systemNameDb, counters: false }).tables[0]!;
  const readsData = (viaDynptr: boolean): boolean => {
    const b = compileTable(table, k, { viaDynptr }).hooks[0]!.linked.bytes;
    for (let i = 0; i < b.length; i += 8) {
      // ldx dw rX, [r7 + offsetof(sk_buff, data)]
      if (b[i] === 0x79 && b[i + 1]! >> 4 === 7 && b.readInt16LE(i + 2) === k.skbData) return true;
    }
    return false;
  };
  t.ok(readsData(false), 'programs as commands compile them read skb->data');
  t.notOk(readsData(true), 'viaDynptr programs do not');
});

t.test('the dispatcher tail-calls the active generation\'s program of its hook', async (t) => {
  if (!requireKernel(t)) return;
  const accept = load(verdict(NF_ACCEPT)), drop = load(verdict(NF_DROP));
  const pkt = tcpPacket('192.0.2.1', '10.0.0.1', { sport: 1, dport: 2, flags: TCP.SYN });
  try {
    for (const [stride, hookSlot] of [[HOOK_SLOTS, 0], [HOOK_SLOTS, 2], [NFT_SLOTS, 5]] as const) {
      const gen = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1, name: 'bpft_gen' });
      const progs = mapCreate({ type: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2 * stride, name: 'bpft_progs' });
      let d = -1;
      try {
        for (let i = 0; i < 2 * stride; i++) mapUpdate(progs, u32Key(i), u32Key(drop));
        d = load(patchMaps(dispatcher(hookSlot, stride), new Map([[GEN_MAP, gen], [PROGS_MAP, progs]])));
        for (const g of [0, 1, 0]) {
          mapUpdate(gen, u32Key(0), u32Key(g));
          const mine = g * stride + hookSlot;
          mapUpdate(progs, u32Key(mine), u32Key(accept));
          t.equal(testRunNf(d, pkt, 1).retval, NF_ACCEPT, `stride ${stride}, hook slot ${hookSlot}, generation ${g}: its program runs`);
          mapUpdate(progs, u32Key(mine), u32Key(drop));
          t.equal(testRunNf(d, pkt, 1).retval, NF_DROP, `stride ${stride}, hook slot ${hookSlot}, generation ${g}: the slot's new program runs`);
        }
      } finally { close(d); close(progs); close(gen); }
    }
  } finally { close(accept); close(drop); }
});
