/**
 * Colour for messages on stderr, only when stderr is a terminal (and
 * neither NO_COLOR is set nor TERM is "dumb"): errors red, warnings yellow.
 * Pipes, files and logs get the plain text.
 */
import fs from 'node:fs';

const CODES = { error: 31, warning: 33 } as const;

/**
 * Is stderr a terminal? Asked of its descriptor, not of process.stderr (made
 * for it, with node's stream modules, as node:tty's are: several ms of a
 * command's start): only a character device is asked further.
 */
let stderrTTY: boolean | undefined;
function stderrIsTTY(): boolean {
  if (stderrTTY === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      stderrTTY = fs.fstatSync(2).isCharacterDevice() && (require('node:tty') as typeof import('node:tty')).isatty(2);
    } catch { stderrTTY = false; }
  }
  return stderrTTY;
}

/** Does `stream` (by default stderr) take colours? */
export function colours(stream?: { isTTY?: boolean }): boolean {
  return (stream ? !!stream.isTTY : stderrIsTTY()) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

/** `text` in the colour of `kind` when `stream` takes colours; a trailing newline stays outside the colour. */
export function paint(kind: keyof typeof CODES, text: string, stream?: { isTTY?: boolean }): string {
  if (!colours(stream)) return text;
  const nl = text.endsWith('\n') ? '\n' : '';
  return `\x1b[${CODES[kind]}m${nl ? text.slice(0, -1) : text}\x1b[0m${nl}`;
}
