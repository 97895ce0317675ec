/**
 * The dispatcher: the only program attached to a hook. It reads the active
 * generation (0 or 1) from the "gen" array map and tail-calls the hook's
 * program of that generation from the "progs" program array. Replacing a
 * ruleset fills the inactive generation, then flips one 4-byte word: every
 * hook switches at once, and no packet ever meets a hook without a filter.
 * If the slot were empty the tail call falls through and the packet is
 * dropped (fail closed).
 */
import { Asm, Helper, link, type Linked, NF_ACCEPT, NF_DROP, R1, R2, R3, R6 } from './asm';

export const GEN_MAP = 'gen';
export const PROGS_MAP = 'progs';
/** slots per generation in the program array: index = gen * HOOK_SLOTS + hookSlot */
export const HOOK_SLOTS = 4;

/**
 * `stride`: the slots of one generation (HOOK_SLOTS for an iptables table,
 * NFT_SLOTS for the nft ruleset). Each generation has its own tail call with
 * a constant index: the JIT turns those into direct jumps, patched when the
 * program array changes (an index computed at run time is an indirect jump,
 * about 12 ns a packet more on the development machine).
 */
export function dispatcher(hookSlot: number, stride = HOOK_SLOTS): Linked {
  const a = new Asm();
  const second = a.fresh('gen1');
  a.movReg(R6, R1);
  a.ldMapValue(R1, GEN_MAP, 0);
  a.ldx(4, R3, R1, 0);
  a.alu64('and', R3, { imm: 1 });
  a.jmp('jne', R3, 0, second);
  for (const gen of [0, 1]) {
    if (gen) a.label(second);
    a.movReg(R1, R6);
    a.ldMapFd(R2, PROGS_MAP);
    a.mov64(R3, gen * stride + hookSlot);
    a.call(Helper.tail_call);
    a.ret(NF_DROP);
  }
  return link(a);
}

/** Base chains the nft ruleset may have (an inet base chain counts twice: one per family). */
export const NFT_SLOTS = 64;

/**
 * A program that accepts every packet: what a base chain's slot holds in the
 * generation that does not have that chain, while its link is attached
 * before (or detached after) the flip, so the switch stays one word.
 */
export function acceptAll(): Linked {
  const a = new Asm();
  a.ret(NF_ACCEPT);
  return link(a);
}
