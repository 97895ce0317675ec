import t from 'tap';
import { S } from '../cgen/summary';
import { Asm, link, R0 } from '../cgen/asm';
import { Btf, BtfKind } from '../cgen/btf';
import { programBtf } from '../cgen/btfgen';

t.test('generated BTF reads back; func_info points at every function', async (t) => {
  const a = new Asm();
  a.callSub('f1').callSub('f2').exit();
  a.func('f1', 'chain_0', true).mov64(R0, 2).exit();
  a.func('f2', 'chunk_1_0', true).mov64(R0, 2).exit();
  const linked = link(a);
  const b = programBtf(linked);
  const btf = new Btf(b.btf);
  t.ok(btf.find(BtfKind.FUNC, 'chain_0') > 0, 'FUNC chain_0');
  t.ok(btf.find(BtfKind.FUNC, 'chunk_1_0') > 0, 'FUNC chunk_1_0');
  t.equal(btf.sizeOf(btf.find(BtfKind.STRUCT, 'bpft_pkt')), S.SIZE, `the packet summary is ${S.SIZE} bytes`);
  t.equal(b.funcInfoCount, 3);
  t.same([0, 1, 2].map((i) => b.funcInfo.readUInt32LE(i * 8)), [0, 3, 5], 'insn offsets of entry, f1, f2');
  t.throws(() => btf.find(BtfKind.FUNC, 'missing'), /no FUNC named missing/);
});
