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

/** The lexer the grammar reads: moo's, without blanks and continued lines. */
export const nftLexer = {
  reset(chunk: string, info?: moo.LexerState): void { lexer.reset(chunk, info); },
  next(): moo.Token | undefined {
    for (;;) {
      const t = lexer.next();
      if (!t || (t.type !== 'ws' && t.type !== 'cont')) return t;
    }
  },
  save: (): moo.LexerState => lexer.save(),
  formatError: (t: moo.Token, message?: string): string => lexer.formatError(t, message),
  has: (name: string): boolean => lexer.has(name),
};
