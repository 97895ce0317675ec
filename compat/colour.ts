/**
 * Colour for messages on stderr, only when stderr is a terminal (and
 * neither NO_COLOR is set nor TERM is "dumb"): errors red, warnings yellow.
 * Pipes, files and logs get the plain text.
 */
import { stderrIsTerminal } from './output';

const CODES = { error: 31, warning: 33 } as const;

/** Does `stream` (by default stderr) take colours? */
export function colours(stream?: { isTTY?: boolean }): boolean {
  return (stream ? !!stream.isTTY : stderrIsTerminal()) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

/** `text` in the colour of `kind` when `stream` takes colours; a trailing newline stays outside the colour. */
export function paint(kind: keyof typeof CODES, text: string, stream?: { isTTY?: boolean }): string {
  if (!colours(stream)) return text;
  const nl = text.endsWith('\n') ? '\n' : '';
  return `\x1b[${CODES[kind]}m${nl ? text.slice(0, -1) : text}\x1b[0m${nl}`;
}
