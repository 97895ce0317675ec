/**
 * The packet's socket owner for -m owner, decoded by the OUTPUT prologue
 * (r7 = skb) into the summary as xt_owner sees it: skb_to_full_sk (a
 * request socket stands for its listener; a time-wait socket is none), then
 * sk_socket → file → f_cred → fsuid, fsgid. Every step reads through
 * bpf_probe_read_kernel, so a socket of any kind is read safely.
 */
import { type Asm, Helper, R0, R1, R2, R3, R7, R10 } from './asm';
import type { KernelLayout } from './btf';
import { FRAME, OWNER_FILE, OWNER_NOFILE, S } from './summary';

const TCP_TIME_WAIT = 6, TCP_NEW_SYN_RECV = 12;

export function emitSocketOwner(a: Asm, k: KernelLayout): void {
  const sum = FRAME.SUMMARY, tmp = FRAME.XKEY, done = a.fresh('ownerdone'), full = a.fresh('fullsk');
  /** *(u64 *)tmp = *(u64 *)(r3 + off), or leave at `done` */
  const follow = (off: number, size = 8): void => {
    a.alu64('add', R3, { imm: off }).movReg(R1, R10).alu64('add', R1, { imm: tmp }).mov64(R2, size);
    a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, done);
  };
  a.ldx(8, R3, R7, k.skbSk).jmp('jeq', R3, 0, done);
  a.stx(8, R10, tmp + 8, R3);
  follow(k.sockState, 1);
  a.ldx(1, R2, R10, tmp).jmp('jeq', R2, TCP_TIME_WAIT, done).ldx(8, R3, R10, tmp + 8).jmp('jne', R2, TCP_NEW_SYN_RECV, full);
  follow(k.requestSockListener);
  a.ldx(8, R3, R10, tmp).jmp('jeq', R3, 0, done);
  a.label(full);
  follow(k.sockSocket);
  a.ldx(8, R3, R10, tmp).jmp('jeq', R3, 0, done);
  a.st(1, R10, sum + S.OWNST, OWNER_NOFILE);
  follow(k.socketFile);
  a.ldx(8, R3, R10, tmp).jmp('jeq', R3, 0, done);
  follow(k.fileCred);
  a.ldx(8, R3, R10, tmp).jmp('jeq', R3, 0, done).stx(8, R10, tmp + 8, R3);
  follow(k.credFsuid, 4);
  a.ldx(4, R1, R10, tmp).stx(4, R10, sum + S.OWNUID, R1);
  a.ldx(8, R3, R10, tmp + 8);
  follow(k.credFsgid, 4);
  a.ldx(4, R1, R10, tmp).stx(4, R10, sum + S.OWNGID, R1);
  a.st(1, R10, sum + S.OWNST, OWNER_FILE);
  a.label(done);
}
