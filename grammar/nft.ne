# The structure of an nft file: commands of words, strings, commas and blocks,
# separated by newlines, semicolons or comments.
#
# Partial results are immutable lists (each step links one new cell to the
# previous ones): nearley completes a rule once for every prefix of a command
# it is still reading, so appending in place would record a command once per
# prefix. The lists become arrays when a command, block or file is complete.
# Words and commas come in runs (nft-lexer.ts), a token each run; commands
# of runs and strings alone that follow each other, each ended by a
# separator, come as one cmds token.
@preprocessor typescript
@{%
import { nftLexer, type SimpleCommand } from './nft-lexer';
import type { NftCommand, NftItem } from './nft-ast';
type Tok = { type: string; value: string; text: string; line: number; col: number; items?: NftItem[]; cmds?: SimpleCommand[] };
interface Cell<T> { v: T; prev: Cell<T> | null }
const toArray = <T>(c: Cell<T> | null): T[] => { const out: T[] = []; for (let x = c; x; x = x.prev) out.push(x.v); return out.reverse(); };
const flat = (c: Cell<NftItem[]>): NftItem[] => toArray(c).flat();
interface Body { cmds: Cell<NftCommand> | null; sep: NftCommand['sep'] }
const str = ([t]: [Tok]): NftItem[] => [{ kind: 'string', text: t.value.slice(1, -1), line: t.line, col: t.col }];
const withCmd = (b: Body, c: Cell<NftItem[]>, next: NftCommand['sep']): Body => ({ cmds: { v: { items: flat(c), sep: b.sep }, prev: b.cmds }, sep: next });
const sepKind = (s: Tok): NftCommand['sep'] => (s.type === 'semi' ? 'semi' : 'nl');
// each command's sep is what ended the one before it (the body's sep for the first)
const withCmds = (b: Body, t: Tok): Body => {
  let cmds = b.cmds, sep = b.sep;
  for (const c of t.cmds!) { cmds = { v: { items: c.items, sep }, prev: cmds }; sep = c.end; }
  return { cmds, sep };
};
const done = (b: Body, c?: Cell<NftItem[]>): NftCommand[] => toArray(c ? withCmd(b, c, b.sep).cmds : b.cmds);
%}
@lexer nftLexer

file -> body                       {% ([b]) => done(b) %}
  | body cmd                       {% ([b, c]) => done(b, c) %}

# commands each ended by a separator (empty ones between separators are nothing)
body -> null                       {% () => ({ cmds: null, sep: 'start' }) %}
  | body sep                       {% ([b, s]) => (b.cmds ? { cmds: b.cmds, sep: b.sep === 'start' ? 'start' : b.sep } : b) %}
  | body cmd sep                   {% ([b, c, s]) => withCmd(b, c, sepKind(s)) %}
  | body %cmds                     {% ([b, t]) => withCmds(b, t) %}

# a command: its parts in cells, each part one or more items
cmd -> part                        {% ([i]) => ({ v: i, prev: null }) %}
  | cmd part                       {% ([c, i]) => ({ v: i, prev: c }) %}

part -> %run                       {% ([t]) => t.items %}
  | %string                        {% str %}
  | %lbrace body %rbrace           {% ([o, b, c]) => [{ kind: 'block', body: done(b), line: o.line, col: o.col, end: { line: c.line, col: c.col } }] %}
  | %lbrace body cmd %rbrace       {% ([o, b, x, c]) => [{ kind: 'block', body: done(b, x), line: o.line, col: o.col, end: { line: c.line, col: c.col } }] %}

sep -> %nl {% id %} | %semi {% id %} | %comment {% id %}
