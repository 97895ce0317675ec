/**
 * The moo lexer for nft files. nft's syntax is read in two steps: this
 * lexer and the nearley grammar (nft.ne) give a file its structure (commands
 * of words, strings and braced blocks, separated by newlines, semicolons or
 * commas); xlate/nft.ts gives the words their meaning. A word is anything
 * between blanks and the structural characters, so addresses, prefixes,
 * ranges, `!=`, `@set` and `$var` each arrive whole.
 */
import moo from 'moo';

const lexer = moo.compile({
  ws: /[ \t\f\v]+/,
  nl: { match: /\r?\n/, lineBreaks: true },
  comment: /#[^\n]*/,
  string: /"[^"\n]*"/,
  lbrace: '{',
  rbrace: '}',
  semi: ';',
  comma: ',',
  // a line continued with a backslash
  cont: { match: /\\\r?\n/, lineBreaks: true },
  word: /[^\s{}"#;,\\]+/,
  stray: /[\\"]/,
});

export interface NftToken { type: string; value: string; text: string; line: number; col: number; offset: number }

/** A word or comma of a run, as the grammar's items hold them. */
export type RunItem = { kind: 'word'; text: string; line: number; col: number } | { kind: 'comma'; line: number; col: number };
/**
 * The words and commas that follow each other (blanks and continued lines
 * between them), as one token: most of a ruleset is such runs (`ip saddr
 * 10.0.0.1 drop`), and the grammar's work and memory grow with its tokens.
 * It reads a run whole, each item with its own position.
 */
export type NftRunToken = moo.Token & { type: 'run'; items: RunItem[] };

const runItem = (t: moo.Token): RunItem => (t.type === 'comma' ? { kind: 'comma', line: t.line, col: t.col } : { kind: 'word', text: t.value, line: t.line, col: t.col });

/** the token read after a run (that ended it), to be given next */
let ahead: moo.Token | undefined;

/** moo's next token, without blanks and continued lines. */
function significant(): moo.Token | undefined {
  if (ahead) { const t = ahead; ahead = undefined; return t; }
  for (;;) {
    const t = lexer.next();
    if (!t || (t.type !== 'ws' && t.type !== 'cont')) return t;
  }
}

/** The lexer the grammar reads: moo's, without blanks and continued lines, words and commas in runs. One text at a time (reset). */
export const nftLexer = {
  reset(chunk: string, info?: moo.LexerState): void { ahead = undefined; lexer.reset(chunk, info); },
  next(): moo.Token | undefined {
    const t = significant();
    if (!t || (t.type !== 'word' && t.type !== 'comma')) return t;
    const items = [runItem(t)];
    for (let n = significant(); n; n = significant()) {
      if (n.type !== 'word' && n.type !== 'comma') { ahead = n; break; }
      items.push(runItem(n));
    }
    const run: NftRunToken = { ...t, type: 'run', items };
    return run;
  },
  save: (): moo.LexerState => lexer.save(),
  formatError: (t: moo.Token, message?: string): string => lexer.formatError(t, message),
  has: (name: string): boolean => name === 'run' || lexer.has(name),
};
