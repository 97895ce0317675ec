/**
 * IR table → one netfilter BPF program per built-in chain (hook).
 *
 * Layout of a hook program:
 *   prologue: decode the packet into the summary (cgen/summary.ts), r9 = &summary
 *   the built-in chain's rules, each falling through to the next on no match
 *   policy: count, return the policy verdict
 *   one subprogram per user chain reachable from the hook, called with r1 = &summary;
 *   subprograms return DROP(0), ACCEPT(1) or CONTINUE(2, i.e. RETURN or end of chain)
 * Counters live in one array map ("counters"): 16 bytes (packets, bytes) per rule,
 * in table order, then one slot per built-in chain policy.
 */
import { Asm, Helper, link, type Linked, NF_ACCEPT, NF_DROP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 } from './asm';
import type { KernelLayout } from './btf';
import { emitIpPart, emitMatch } from './match';
import { CtBit, FRAME, RET_CONTINUE, S } from './summary';
import { type BuiltinChain, BUILTIN_CHAINS, type Chain, type Rule, type Table } from '../xlate/ir';

export const COUNTERS_MAP = 'counters';

export interface CounterLayout {
  /** slot of each rule, keyed by the rule object */
  ruleSlot: Map<Rule, number>;
  policySlot: Map<BuiltinChain, number>;
  slots: number;
}

export function counterLayout(t: Table): CounterLayout {
  const ruleSlot = new Map<Rule, number>();
  let n = 0;
  for (const c of t.chains) for (const r of c.rules) ruleSlot.set(r, n++);
  const policySlot = new Map<BuiltinChain, number>();
  for (const b of BUILTIN_CHAINS) policySlot.set(b, n++);
  return { ruleSlot, policySlot, slots: n };
}

export const HOOK_OF: Record<BuiltinChain, number> = { INPUT: 1, FORWARD: 2, OUTPUT: 3 };

export interface HookProgram {
  chain: BuiltinChain;
  hooknum: number;
  asm: Asm;
  linked: Linked;
  /** user chains compiled into this program */
  userChains: string[];
}

export interface ProgramOrigin { chain: string; rule: number; src?: Rule['src'] }

function count(a: Asm, slot: number): void {
  a.ldMapValue(R1, COUNTERS_MAP, slot * 16);
  a.mov64(R2, 1);
  a.atomicAdd(8, R1, 0, R2);
  a.ldx(4, R2, R9, S.SKBLEN);
  a.atomicAdd(8, R1, 8, R2);
}

const chainLabel = (name: string): string => `chain:${name}`;

/** Emit the rules of one chain. `inMain` selects how RETURN/goto/end behave. */
function emitChain(a: Asm, chain: Chain, cl: CounterLayout, inMain: boolean, policyLabel: string, exitLabel: string, hotdrop: string): void {
  chain.rules.forEach((rule, i) => {
    const next = a.fresh(`r${i}.next`);
    a.note(`${chain.name} rule ${i + 1}${rule.src ? ` (${rule.src.file}:${rule.src.line})` : ''}`);
    emitIpPart(a, rule.ip, next);
    for (const m of rule.matches) emitMatch(a, m, { next, hotdrop });
    count(a, cl.ruleSlot.get(rule)!);
    const v = rule.verdict;
    switch (v.kind) {
      case 'accept': a.ret(NF_ACCEPT); break;
      case 'drop': a.ret(NF_DROP); break;
      case 'return':
        if (inMain) a.ja(policyLabel); else a.ret(RET_CONTINUE);
        break;
      case 'jump':
        a.movReg(R1, R9).callSub(chainLabel(v.chain));
        a.jmp('jne', R0, RET_CONTINUE, exitLabel);
        break;
      case 'goto':
        a.movReg(R1, R9).callSub(chainLabel(v.chain));
        if (inMain) { a.jmp('jne', R0, RET_CONTINUE, exitLabel); a.ja(policyLabel); } else a.exit();
        break;
      case 'none':
        break;
    }
    a.label(next);
  });
}

function emitPrologue(a: Asm, chain: BuiltinChain, k: KernelLayout, unparsable: string): void {
  const sum = FRAME.SUMMARY;
  a.movReg(R6, R1); // ctx
  a.ldx(8, R7, R6, 8); // ctx->skb
  for (let o = 0; o < S.SIZE; o += 8) a.st(8, R10, sum + o, 0);
  for (let o = 0; o < 24; o += 8) { a.st(8, R10, FRAME.L4HDR + o, 0); a.st(8, R10, FRAME.IPHDR + o, 0); }
  // skb->len
  a.ldx(4, R0, R7, k.skbLen);
  a.stx(4, R10, sum + S.SKBLEN, R0);
  // conntrack state from skb->_nfct: pointer | ctinfo
  const hasCt = a.fresh('hasct'), store = a.fresh('ctstore');
  a.ldx(8, R1, R7, k.skbNfct);
  a.movReg(R2, R1).alu64('and', R2, { imm: 7 });
  a.alu64('and', R1, { imm: -8 });
  a.jmp('jne', R1, 0, hasCt);
  a.mov64(R3, CtBit.INVALID);
  a.jmp('jne', R2, 7, store);
  a.mov64(R3, CtBit.UNTRACKED).ja(store);
  a.label(hasCt);
  a.mov64(R3, CtBit.ESTABLISHED);
  a.jmp('jeq', R2, 0, store).jmp('jeq', R2, 3, store);
  a.mov64(R3, CtBit.RELATED);
  a.jmp('jeq', R2, 1, store).jmp('jeq', R2, 4, store);
  a.mov64(R3, CtBit.NEW);
  a.label(store);
  a.stx(1, R10, sum + S.CT, R3);
  // interface names
  const ifaces: [number, number][] = [];
  if (chain !== 'OUTPUT') ifaces.push([k.nfHookStateIn, S.IN]);
  if (chain !== 'INPUT') ifaces.push([k.nfHookStateOut, S.OUT]);
  for (const [stateOff, sumOff] of ifaces) {
    const skip = a.fresh('nodev');
    a.ldx(8, R1, R6, 0); // ctx->state
    a.ldx(8, R2, R1, stateOff);
    a.jmp('jeq', R2, 0, skip);
    a.ldx(8, R3, R2, k.netDeviceName).stx(8, R10, sum + sumOff, R3);
    a.ldx(8, R3, R2, k.netDeviceName + 8).stx(8, R10, sum + sumOff + 8, R3);
    a.label(skip);
  }
  // packet bytes through a dynptr
  a.movReg(R1, R7).mov64(R2, 0).movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR });
  a.callKfunc(k.kfuncDynptrFromSkb);
  a.jmp('jne', R0, 0, unparsable);
  a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.IPHDR }).mov64(R2, 20);
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).mov64(R4, 0).mov64(R5, 0);
  a.call(Helper.dynptr_read);
  a.jmp('jne', R0, 0, unparsable);
  const ip = FRAME.IPHDR;
  a.ldx(1, R8, R10, ip).alu64('and', R8, { imm: 0xf }).alu64('lsh', R8, { imm: 2 }); // thoff
  a.ldx(1, R1, R10, ip + 9).stx(1, R10, sum + S.PROTO, R1);
  a.ldx(1, R1, R10, ip + 8).stx(1, R10, sum + S.TTL, R1);
  a.ldx(2, R1, R10, ip + 2).toBe(R1, 16).stx(2, R10, sum + S.TOTLEN, R1);
  a.ldx(4, R1, R10, ip + 12).toBe(R1, 32).stx(4, R10, sum + S.SADDR, R1);
  a.ldx(4, R1, R10, ip + 16).toBe(R1, 32).stx(4, R10, sum + S.DADDR, R1);
  const done = a.fresh('parsed');
  a.ldx(2, R1, R10, ip + 6).toBe(R1, 16).alu64('and', R1, { imm: 0x1fff }).stx(2, R10, sum + S.FRAGOFF, R1);
  a.jmp('jne', R1, 0, done);
  // bytes after the IP header: min(skb->len - thoff, 20) are copied
  const nonneg = a.fresh('nonneg'), capped = a.fresh('capped');
  a.ldx(4, R4, R10, sum + S.SKBLEN).alu64('sub', R4, R8);
  a.jmp('jsge', R4, 0, nonneg).mov64(R4, 0);
  a.label(nonneg);
  a.stx(4, R10, sum + S.L4AVAIL, R4);
  a.jmp('jle', R4, 20, capped).mov64(R4, 20);
  a.label(capped);
  a.jmp('jeq', R4, 0, done);
  a.movReg(R2, R4).movReg(R1, R10).alu64('add', R1, { imm: FRAME.L4HDR });
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).movReg(R4, R8).mov64(R5, 0);
  a.call(Helper.dynptr_read);
  const readOk = a.fresh('l4ok');
  a.jmp('jeq', R0, 0, readOk);
  a.st(4, R10, sum + S.L4AVAIL, 0).ja(done);
  a.label(readOk);
  const l4 = FRAME.L4HDR;
  a.ldx(2, R1, R10, l4).toBe(R1, 16).stx(2, R10, sum + S.SPORT, R1);
  a.ldx(2, R1, R10, l4 + 2).toBe(R1, 16).stx(2, R10, sum + S.DPORT, R1);
  a.ldx(1, R1, R10, l4 + 13).stx(1, R10, sum + S.TCPFLAGS, R1);
  a.ldx(1, R1, R10, l4).stx(1, R10, sum + S.ICMPTYPE, R1);
  a.ldx(1, R1, R10, l4 + 1).stx(1, R10, sum + S.ICMPCODE, R1);
  a.label(done);
  a.movReg(R9, R10).alu64('add', R9, { imm: sum });
}

/** User chains reachable from `start`, in first-reached order. */
export function reachableChains(t: Table, start: string): string[] {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const seen: string[] = [];
  const walk = (name: string): void => {
    for (const r of byName.get(name)?.rules ?? []) {
      const v = r.verdict;
      if ((v.kind === 'jump' || v.kind === 'goto') && !seen.includes(v.chain)) { seen.push(v.chain); walk(v.chain); }
    }
  };
  walk(start);
  return seen;
}

export function compileHook(t: Table, chain: BuiltinChain, cl: CounterLayout, k: KernelLayout): HookProgram {
  const a = new Asm();
  const main = t.chains.find((c) => c.name === chain)!;
  const policy = 'policy', exit = 'exit', hotdrop = 'hotdrop';
  a.note(`prologue (${chain})`);
  emitPrologue(a, chain, k, hotdrop);
  emitChain(a, main, cl, true, policy, exit, hotdrop);
  a.label(policy).note(`${chain} policy ${main.policy}`);
  count(a, cl.policySlot.get(chain)!);
  a.ret(main.policy === 'DROP' ? NF_DROP : NF_ACCEPT);
  a.label(exit).exit();
  a.label(hotdrop).ret(NF_DROP);
  const users = reachableChains(t, chain);
  for (const name of users) {
    const c = t.chains.find((x) => x.name === name)!;
    const subExit = `exit:${name}`, subDrop = `hotdrop:${name}`;
    a.label(chainLabel(name)).note(`chain ${name}`);
    a.movReg(R9, R1);
    emitChain(a, c, cl, false, '', subExit, subDrop);
    a.ret(RET_CONTINUE);
    a.label(subExit).exit();
    a.label(subDrop).ret(NF_DROP);
  }
  return { chain, hooknum: HOOK_OF[chain], asm: a, linked: link(a), userChains: users };
}

export interface CompiledTable {
  counters: CounterLayout;
  hooks: HookProgram[];
}

export function compileTable(t: Table, k: KernelLayout): CompiledTable {
  const cl = counterLayout(t);
  return { counters: cl, hooks: BUILTIN_CHAINS.map((c) => compileHook(t, c, cl, k)) };
}
