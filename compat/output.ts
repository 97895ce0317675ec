/**
 * A command's output, written with write(2) itself: process.stdout and
 * process.stderr would load node's stream modules (about 5 ms of a
 * command's start), and on POSIX they write pipes asynchronously, which a
 * command that ends with _exit(2) (compat/cli) could leave unwritten.
 */
import fs from 'node:fs';

/**
 * Write all of `s` to `fd`. A non-blocking descriptor that is full is waited
 * for. A reader that went away ends the output: for stdout (`| head`) the
 * command ends, as iptables does, not in an unhandled EPIPE; for stderr the
 * rest is dropped.
 */
function writeAll(fd: 1 | 2, s: string): void {
  let buf = Buffer.from(s);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(fs.writeSync(fd, buf));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); continue; }
      if (code === 'EPIPE' && fd === 1) process.exit(process.exitCode ?? 0);
      if (fd === 2) return;
      throw e;
    }
  }
}

export const writeStdout = (s: string): void => { if (s) writeAll(1, s); };
export const writeStderr = (s: string): void => { if (s) writeAll(2, s); };

/**
 * Is stderr a terminal? Asked of its descriptor, not of process.stderr (made
 * for it, with node's stream modules, as node:tty's are: several ms of a
 * command's start): only a character device is asked further. Once a process.
 */
let stderrTTY: boolean | undefined;
export function stderrIsTerminal(): boolean {
  if (stderrTTY === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      stderrTTY = fs.fstatSync(2).isCharacterDevice() && (require('node:tty') as typeof import('node:tty')).isatty(2);
    } catch { stderrTTY = false; }
  }
  return stderrTTY;
}
