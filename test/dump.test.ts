/**
 * bpftables dump and counters: the disassembler on a program of every
 * instruction class the code generator emits, then both commands on a live
 * ruleset whose counters packets have moved (through the attached hooks).
 */
import path from 'node:path';
import t from 'tap';
import { nsExec, nsExecOk } from '../compat/lab';
import { TCP, tcpPacket, udpPacket } from '../compat/probes';
import { Asm, Helper, link, R0, R1, R2, R3, R9, R10 } from '../cgen/asm';
import { disassemble } from '../cgen/disasm';
import { BIN, prepareState, requireKernel } from './helpers/env';
import { liveVerdicts, throwawayNamespace } from './helpers/live';

t.test('the disassembler reads back what the assembler wrote', async (t) => {
  const a = new Asm();
  const out = a.fresh('out');
  a.note('first block').movReg(R9, R1).ldx(4, R1, R9, 0).toBe(R1, 32).jmp32('jne', R1, 0x0a000001, out);
  a.ldMapValue(R1, 'counters', 16).mov64(R2, 1).atomicAdd(8, R1, 0, R2).st(8, R10, -8, 0).stx(2, R10, -16, R1);
  a.alu64('add', R2, { imm: -4 }).alu32('and', R1, R2).ldMapFd(R1, 'ex_0').movReg(R2, R10).alu64('add', R2, { imm: -16 }).call(Helper.map_lookup_elem);
  a.callKfunc(77).movReg(R1, R9).callSub('fn');
  a.label(out).mov64(R0, 1).exit();
  a.func('fn', 'chain_1', true).note('chain fn').mov64(R0, 2).jmpReg('jge', R0, R3, 'fnend').label('fnend').exit();
  const lines = disassemble(link(a), { kfuncs: new Map([[77, 'bpf_dynptr_slice']]), explain: (n) => (n === 'first block' ? '-A INPUT -j ACCEPT' : undefined) });
  t.same(lines, [
    'bpftables_hook:',
    '    ; first block',
    '    ;   -A INPUT -j ACCEPT',
    '      0: r9 = r1',
    '      1: r1 = *(u32 *)(r9 +0)',
    '      2: r1 = be32 r1',
    '      3: if w1 != 0xa000001 goto L20',
    '      4: r1 = map[counters][0]+16',
    '      6: r2 = 1',
    '      7: lock *(u64 *)(r1 +0) += r2',
    '      8: *(u64 *)(r10 -8) = 0',
    '      9: *(u16 *)(r10 -16) = r1',
    '     10: r2 += -4',
    '     11: w1 &= w2',
    '     12: r1 = map[ex_0]',
    '     14: r2 = r10',
    '     15: r2 += -16',
    '     16: call bpf_map_lookup_elem',
    '     17: call bpf_dynptr_slice',
    '     18: r1 = r9',
    '     19: call chain_1',
    '  L20:',
    '     20: r0 = 1',
    '     21: exit',
    '',
    'chain_1:',
    '    ; chain fn',
    '     22: r0 = 2',
    '     23: if r0 >= r3 goto L24',
    '  L24:',
    '     24: exit',
  ], 'every instruction class, labels, map names, calls by name, a function and the notes');
});

t.test('dump and counters on a live ruleset', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = throwawayNamespace(t, 'dump');
  const rules = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':svc - [0:0]',
    '-A INPUT -p tcp -m tcp --dport 22 -j svc', '-A INPUT -p udp -m udp --dport 53 -j DROP',
    ...Array.from({ length: 20 }, (_, i) => `-A INPUT -s 10.9.0.${i}/32 -j DROP`), '-A svc -s 10.0.0.0/8 -j ACCEPT', 'COMMIT', ''].join('\n');
  t.equal(nsExec(ns, path.join(BIN, 'iptables-restore'), [], rules).status, 0);
  // three packets through the attached INPUT hook: ssh (svc accepts), dns (dropped), one from a listed source
  const v = liveVerdicts(ns, [
    { chain: 'INPUT', packet: tcpPacket('10.1.1.1', '10.0.0.2', { sport: 1000, dport: 22, flags: TCP.SYN }) },
    { chain: 'INPUT', packet: udpPacket('192.0.2.1', '10.0.0.2', 1000, 53) },
    { chain: 'INPUT', packet: udpPacket('10.9.0.7', '10.0.0.2', 1000, 80) },
  ]);
  t.equal(v, 'ADD');
  const counters = JSON.parse(nsExecOk(ns, path.join(BIN, 'bpftables'), ['counters', '--json'])) as { counters: { chain: string; rule: number; packets: number; text?: string }[] };
  const count = (chain: string, rule: number): number | undefined => counters.counters.find((c) => c.chain === chain && c.rule === rule)?.packets;
  t.same([count('INPUT', 1), count('INPUT', 2), count('INPUT', 10), count('INPUT', 3), count('svc', 1), count('INPUT', 0)], [1, 1, 1, 0, 1, 0], 'each rule counted the packets it matched (rule 10: 10.9.0.7, in the run of sources)');
  t.match(nsExecOk(ns, path.join(BIN, 'bpftables'), ['counters']), /\n +1 +\d+  -A INPUT -p tcp -m tcp --dport 22 -j svc\n/, 'the text form: packets, bytes, the rule');
  const dump = nsExecOk(ns, path.join(BIN, 'bpftables'), ['dump']);
  t.match(dump, /^# INPUT \(hook LOCAL_IN, IPv4\): \d+ instructions, 2 functions; user chains svc\n/, 'the INPUT hook, its size and its user chain');
  t.match(dump, /exact-match run: rules 3-22 as a binary search/, 'the run of sources, compiled as one search');
  t.match(dump, /INPUT rule 2 +-A INPUT -p udp -m udp --dport 53 -j DROP/, 'a rule\'s block, with its text');
  const asm = nsExecOk(ns, path.join(BIN, 'bpftables'), ['dump', '--asm', '--chain', 'svc']);
  t.match(asm, /^chain_\d+:\n/m, '--chain svc: its function');
  t.match(asm, /;   -A svc -s 10\.0\.0\.0\/8 -j ACCEPT\n/, 'the rule above its code');
  t.notMatch(asm, /INPUT rule/, 'and nothing of INPUT\'s own rules');
  t.match(nsExec(ns, path.join(BIN, 'bpftables'), ['dump', '-6']), { status: 1, stderr: /no IPv6 ruleset/ });
  t.match(nsExec(ns, path.join(BIN, 'bpftables'), ['dump', '--chain', 'nosuch']), { status: 1, stderr: /no chain nosuch/ });
});

t.test('the code generator is deterministic (dump compiles the stored ruleset again and shows what was loaded)', async (t) => {
  if (!requireKernel(t)) return;
  const { parseRestore } = await import('../xlate/restore');
  const { compileTable } = await import('../cgen/program');
  const { kernel } = await import('../compat/engine');
  const { systemNameDb } = await import('../compat/namedb');
  const fs = await import('node:fs');
  const text = fs.readFileSync(path.join(__dirname, '..', '..', 'fixtures', 'demo.rules'), 'utf8');
  const bytes = (): string[] => compileTable(parseRestore(text, { file: 'demo.rules', db: systemNameDb, counters: false }).tables[0]!, kernel()).hooks.map((h) => h.linked.bytes.toString('hex'));
  const first = bytes();
  t.ok(first.every((b) => b.length > 0), 'three programs');
  t.same(bytes(), first, 'the same table compiles to the same instructions, byte for byte');
});
