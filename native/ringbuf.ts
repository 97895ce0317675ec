/**
 * Reading a BPF ring buffer map from user space: the consumer page mapped
 * read-write, the producer page and the data area (mapped twice by the
 * kernel, so records never wrap) read-only, and epoll to sleep until the
 * kernel has records.
 */
import { close, epollFor, epollWait, type Mapping, mmap, munmap } from './libc';

const PAGE = 4096;
const BUSY = 0x80000000, DISCARD = 0x40000000;
const HDR = 8;

export class RingBuffer {
  private readonly cons: Mapping;
  private readonly prod: Mapping;
  private readonly consView: DataView;
  private readonly prodView: DataView;
  private readonly data: Uint8Array;
  private readonly mask: bigint;
  private readonly ep: number;

  /** `fd`: the ring buffer map (owned by the caller); `size`: its max_entries. */
  constructor(readonly fd: number, readonly size: number) {
    this.cons = mmap(fd, PAGE, true, 0);
    this.prod = mmap(fd, PAGE + 2 * size, false, PAGE);
    this.consView = new DataView(this.cons.view);
    this.prodView = new DataView(this.prod.view);
    this.data = new Uint8Array(this.prod.view, PAGE, 2 * size);
    this.mask = BigInt(size - 1);
    this.ep = epollFor([fd]);
  }

  /** Hand every committed record to `each` (copied out), then release them; returns how many. */
  drain(each: (record: Buffer) => void): number {
    let cons = this.consView.getBigUint64(0, true);
    const prod = this.prodView.getBigUint64(0, true);
    let n = 0;
    while (cons < prod) {
      const at = Number(cons & this.mask);
      const hdr = new DataView(this.data.buffer, this.data.byteOffset + at, HDR).getUint32(0, true);
      if (hdr & BUSY) break;
      const len = hdr & ~(BUSY | DISCARD);
      if (!(hdr & DISCARD)) {
        each(Buffer.from(this.data.subarray(at + HDR, at + HDR + len)));
        n++;
      }
      cons += BigInt((len + HDR + 7) & ~7);
      this.consView.setBigUint64(0, cons, true);
    }
    return n;
  }

  /** Sleep until records may be there (or `timeoutMs` passes). */
  wait(timeoutMs: number): void { epollWait(this.ep, timeoutMs); }

  close(): void {
    munmap(this.cons);
    munmap(this.prod);
    close(this.ep);
  }
}
