import t from 'tap';
import { Asm, link, patchMaps, R0, R1, R2, R9, R10 } from '../cgen/asm';

const hex = (a: Asm): string => link(a).bytes.toString('hex');

t.test('encodings match the kernel ISA', async (t) => {
  t.equal(hex(new Asm().mov64(R0, 1).exit()), 'b700000001000000' + '9500000000000000', 'mov64 r0, 1; exit');
  t.equal(hex(new Asm().movReg(R9, R1).exit()), 'bf19000000000000' + '9500000000000000', 'mov64 r9, r1');
  t.equal(hex(new Asm().ldx(4, R1, R9, 20).exit()), '6191140000000000' + '9500000000000000', 'ldxw r1, [r9+20]');
  t.equal(hex(new Asm().stx(8, R10, -64, R3()).exit()), '7b3ac0ff00000000' + '9500000000000000', 'stxdw [r10-64], r3');
  t.equal(hex(new Asm().st(8, R10, -8, 0).exit()), '7a0af8ff00000000' + '9500000000000000', 'stdw [r10-8], 0');
  t.equal(hex(new Asm().alu32('and', R1, { imm: 0xffffff00 | 0 }).exit()), '540100000000ffff'.replace('0000ffff', '00ffffff') + '9500000000000000', 'and32 r1, 0xffffff00');
  t.equal(hex(new Asm().toBe(R1, 16).exit()), 'dc01000010000000' + '9500000000000000', 'be16 r1');
  t.equal(hex(new Asm().ldImm64(R2, 0x1122334455667788n).exit()), '1802000088776655' + '0000000044332211' + '9500000000000000', 'lddw r2');
  t.equal(hex(new Asm().atomicAdd(8, R1, 8, R2).exit()), 'db21080000000000' + '9500000000000000', 'lock *(u64 *)(r1+8) += r2');
});

t.test('labels resolve to relative offsets, forward and backward', async (t) => {
  const a = new Asm();
  a.jmp('jeq', R1, 5, 'out'); // 0 → 2: off 1
  a.mov64(R0, 0);             // 1
  a.label('out').mov64(R0, 1).exit(); // 2, 3
  const b = link(a).bytes;
  t.equal(b.readInt16LE(2), 1, 'jeq skips one instruction');
  t.equal(b[0], 0x15, 'jeq imm opcode');
  const a2 = new Asm();
  a2.jmp32('jne', R1, 7, 'x').label('x').exit();
  t.equal(link(a2).bytes[0], 0x56, 'jmp32 jne imm opcode');
});

t.test('unreachable code is pruned, subprograms kept', async (t) => {
  const a = new Asm();
  a.movReg(R1, R9).callSub('sub').exit();
  a.mov64(R0, 9).exit(); // dead
  a.label('sub').mov64(R0, 2).exit();
  const l = link(a);
  t.equal(l.count, 5, 'two dead instructions removed');
  t.equal(l.bytes.readInt32LE(1 * 8 + 4), 1, 'call offset points past the exit');
});

t.test('undefined labels and map fds are reported', async (t) => {
  t.throws(() => link(new Asm().ja('nowhere')), /undefined label nowhere/);
  const l = link(new Asm().ldMapValue(R1, 'counters', 32).mov64(R0, 1).exit());
  t.throws(() => patchMaps(l, new Map()), /no fd for map counters/);
  const patched = patchMaps(l, new Map([['counters', 7]]));
  t.equal(patched.readInt32LE(4), 7, 'fd patched into the first half');
  t.equal(patched[1]! >> 4, 2, 'src_reg = BPF_PSEUDO_MAP_VALUE');
  t.equal(patched.readInt32LE(12), 32, 'value offset in the second half');
});

function R3(): 3 { return 3; }
