/**
 * moo lexers for the iptables-save format.
 *
 * `restoreLexer` splits a file into line-level tokens (the nearley grammar in
 * restore.ne gives them structure); `argvLexer` splits one rule line into
 * arguments with iptables-restore's quoting rules: blanks separate arguments,
 * double quotes group, and inside quotes a backslash takes the next character
 * literally.
 */
import moo from 'moo';

const lineLexer = moo.compile({
  nl: { match: /\r?\n/, lineBreaks: true },
  table: /\*[^\r\n]*/,
  chain: /:[^\r\n]*/,
  comment: /#[^\r\n]*/,
  commit: /COMMIT[ \t]*(?=\r?\n|$)/,
  blank: /[ \t]+(?=\r?\n|$)/,
  // consecutive rule lines (not a table, chain, comment, COMMIT or blank line, not starting with a blank);
  // its line breaks are counted below, not by moo (which runs a regular expression per line break)
  rules: /(?!COMMIT[ \t]*(?:\r?\n|$))[^*:#\s][^\r\n]*(?:\r?\n(?!COMMIT[ \t]*(?:\r?\n|$))[^*:#\s][^\r\n]*)*/,
  line: /[^\r\n]+/,
});

/**
 * The lexer of iptables-save files: moo's, but the line breaks within a
 * `rules` token (a block of rule lines, 100k in a big ruleset) are counted
 * with indexOf, and moo's line counter (its `line`, which every later token
 * and error message takes) moved past them.
 */
export const restoreLexer: moo.Lexer = Object.assign(Object.create(lineLexer) as moo.Lexer, {
  next(): moo.Token | undefined {
    const tok = lineLexer.next();
    if (tok?.type === 'rules') {
      let n = 0;
      for (let i = tok.text.indexOf('\n'); i >= 0; i = tok.text.indexOf('\n', i + 1)) n++;
      tok.lineBreaks = n;
      (lineLexer as unknown as { line: number }).line += n;
    }
    return tok;
  },
  reset(chunk?: string, state?: moo.LexerState): moo.Lexer { lineLexer.reset(chunk, state); return restoreLexer; },
});

export const argvLexer = moo.states({
  main: {
    ws: /[ \t]+/,
    open: { match: '"', push: 'quoted' },
    text: /[^ \t"\r\n]+/,
  },
  quoted: {
    escaped: { match: /\\[^\r\n]/, value: (s: string) => s.slice(1) },
    close: { match: '"', pop: 1 },
    qtext: /[^"\\\r\n]+/,
    stray: /\\/,
  },
});

export interface Arg { text: string; col: number }

export class ArgvError extends Error {
  constructor(message: string, readonly col: number) { super(message); }
}

/**
 * Split a rule line into arguments; columns are 1-based within the line.
 * A line without quotes or backslashes needs no lexer state: blanks alone
 * separate its arguments (the same result argvLexer gives, much faster).
 */
export function splitArgs(line: string, col0 = 1): Arg[] {
  if (!/["\\]/.test(line)) return splitPlain(line, col0);
  return splitQuoted(line, col0);
}

function splitPlain(line: string, col0: number): Arg[] {
  const out: Arg[] = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    let c = line.charCodeAt(i);
    if (c === 32 || c === 9) { i++; continue; }
    const start = i;
    while (i < n && (c = line.charCodeAt(i)) !== 32 && c !== 9) i++;
    out.push({ text: line.slice(start, i), col: col0 + start });
  }
  return out;
}

/** The lexer path, for lines with quoting. */
export function splitQuoted(line: string, col0 = 1): Arg[] {
  argvLexer.reset(line);
  const out: Arg[] = [];
  let cur: Arg | null = null;
  let openCol = 0;
  for (let tok = argvLexer.next(); tok; tok = argvLexer.next()) {
    switch (tok.type) {
      case 'ws':
        if (cur) { out.push(cur); cur = null; }
        break;
      case 'stray':
        throw new ArgvError('backslash at the end of a quoted string', col0 + tok.offset);
      case 'open':
        openCol = col0 + tok.offset;
        cur ??= { text: '', col: col0 + tok.offset };
        break;
      case 'close':
        break;
      default:
        cur ??= { text: '', col: col0 + tok.offset };
        cur.text += tok.value;
    }
  }
  if ((argvLexer as unknown as { state: string }).state === 'quoted') {
    throw new ArgvError('unterminated quoted string', openCol);
  }
  if (cur) out.push(cur);
  return out;
}
