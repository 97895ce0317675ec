/**
 * The moo lexer for nft files. nft's syntax is read in two steps: this
 * lexer and the nearley grammar (nft.ne) give a file its structure (commands
 * of words, strings and braced blocks, separated by newlines, semicolons or
 * commas); xlate/nft.ts gives the words their meaning. A word is anything
 * between blanks and the structural characters, so addresses, prefixes,
 * ranges, `!=`, `@set` and `$var` each arrive whole.
 */
import moo from 'moo';
import type { NftItem } from './nft-ast';

/** A word, or a comma. */
const ITEM = String.raw`(?:[^\s{}"#;,\\]+|,)`;
/** Blanks and continued lines (a backslash at the end of a line). */
const GAP = String.raw`(?:[ \t\f\v]|\\\r?\n)*`;

const lexer = moo.compile({
  ws: /[ \t\f\v]+/,
  nl: { match: /\r?\n/, lineBreaks: true },
  comment: /#[^\n]*/,
  string: /"[^"\n]*"/,
  lbrace: '{',
  rbrace: '}',
  semi: ';',
  // words and commas with nothing but blanks and continued lines between them, in one match (see NftRunToken)
  run: { match: new RegExp(`${ITEM}(?:${GAP}${ITEM})*`), lineBreaks: true },
  // a line continued with a backslash
  cont: { match: /\\\r?\n/, lineBreaks: true },
  stray: /[\\"]/,
});

export interface NftToken { type: string; value: string; text: string; line: number; col: number; offset: number }

/** A word or comma of a run, as the grammar's items hold them. */
export type RunItem = { kind: 'word'; text: string; line: number; col: number } | { kind: 'comma'; line: number; col: number };
/**
 * The words and commas that follow each other (blanks and continued lines
 * between them), as one token: most of a ruleset is such runs (`ip saddr
 * 10.0.0.1 drop`), and the grammar's work and memory grow with its tokens.
 * moo matches a run whole (one regular expression); its items, each with its
 * own position, are split from the match here.
 */
export type NftRunToken = moo.Token & { type: 'run'; items: RunItem[] };
/** A command of a `cmds` token: its items, and the separator that ended it. */
export interface SimpleCommand { items: NftItem[]; end: 'nl' | 'semi' }
/**
 * Commands that begin where a command may begin (after a separator or an
 * opening brace, or at the start), are made of runs and strings only, and
 * each end with a separator, as one token: the body of a chain or set is
 * mostly such commands, and nearley keeps every state of a body it is still
 * reading (each state links to the ones it was built from), so a chain of
 * 10k rules read a run at a time took the parse 470 ms, most of it the
 * garbage collector moving those states. Separators after a command's first
 * one change nothing (nft.ne) and are left out.
 */
export type NftCmdsToken = moo.Token & { type: 'cmds'; cmds: SimpleCommand[] };

const isSep = (t: moo.Token): boolean => t.type === 'nl' || t.type === 'semi' || t.type === 'comment';
/** What a separator says of the command after it (a comment ends a line). */
const sepKind = (t: moo.Token): SimpleCommand['end'] => (t.type === 'semi' ? 'semi' : 'nl');

/** tokens read ahead while looking for simple commands, to be given next, in order */
let queue: moo.Token[] = [];
/** May a command begin at the next token (the last one given was a separator or `{`, or none was)? */
let atStart = true;

/** moo's next token, without blanks and continued lines. */
function significant(): moo.Token | undefined {
  for (;;) {
    const t = lexer.next();
    if (!t || (t.type !== 'ws' && t.type !== 'cont')) return t;
  }
}

const COMMA = 44, NL = 10, SP = 32, TAB = 9, VT = 11, FF = 12, CR = 13, BSLASH = 92;
/** Is this character of a run token a blank, part of a continued line, or a comma (not part of a word)? */
const between = (c: number): boolean => c === SP || c === TAB || c === NL || c === CR || c === BSLASH || c === VT || c === FF || c === COMMA;

/** The words and commas of a run token, each with its place, added to `into`. */
function runItems(t: moo.Token, into: NftItem[]): void {
  const s = t.text;
  let line = t.line, col = t.col;
  for (let i = 0; i < s.length;) {
    const c = s.charCodeAt(i);
    if (c === COMMA) { into.push({ kind: 'comma', line, col }); i++; col++; }
    else if (c === NL) { line++; col = 1; i++; }
    else if (between(c)) { i++; col++; }
    else {
      let j = i + 1;
      while (j < s.length && !between(s.charCodeAt(j))) j++;
      into.push({ kind: 'word', text: s.slice(i, j), line, col });
      col += j - i;
      i = j;
    }
  }
}

/** A run's or a string's items, added to `into`. */
function addItems(into: NftItem[], t: moo.Token): void {
  if (t.type === 'run') runItems(t, into);
  else into.push({ kind: 'string', text: t.value.slice(1, -1), line: t.line, col: t.col });
}

/**
 * From `first` (a run or a string where a command may begin): the simple
 * commands that follow as one cmds token, then the tokens of a command that
 * is not simple (one with a block, or the last one unended), as they came.
 */
function simpleCommands(first: moo.Token): moo.Token {
  const cmds: SimpleCommand[] = [];
  let parts: moo.Token[] = [first];
  for (;;) {
    const t = significant();
    if (t && (t.type === 'run' || t.type === 'string')) { parts.push(t); continue; }
    if (t && isSep(t) && parts.length) {
      const items: NftItem[] = [];
      for (const p of parts) addItems(items, p);
      cmds.push({ items, end: sepKind(t) });
      parts = [];
      continue;
    }
    if (t && isSep(t)) continue;
    // the end of the simple commands: what is left comes as it was read
    queue = t ? [...parts, t] : parts;
    break;
  }
  if (!cmds.length) return queue.shift()!;
  const tok: NftCmdsToken = { ...first, type: 'cmds', cmds };
  return tok;
}

/** The lexer the grammar reads: moo's, without blanks and continued lines, words and commas in runs, simple commands together. One text at a time (reset). */
export const nftLexer = {
  reset(chunk: string, info?: moo.LexerState): void { queue = []; atStart = true; lexer.reset(chunk, info); },
  next(): moo.Token | undefined {
    let t = queue.length ? queue.shift() : significant();
    if (t && atStart && !queue.length && (t.type === 'run' || t.type === 'string')) t = simpleCommands(t);
    if (t?.type === 'run') { const items: RunItem[] = []; runItems(t, items); (t as NftRunToken).items = items; }
    if (t) atStart = t.type === 'lbrace' || t.type === 'cmds' || isSep(t);
    return t;
  },
  save: (): moo.LexerState => lexer.save(),
  formatError: (t: moo.Token, message?: string): string => lexer.formatError(t, message),
  has: (name: string): boolean => name === 'run' || name === 'cmds' || lexer.has(name),
};
