# The structure of an nft file: commands of words, strings, commas and blocks,
# separated by newlines, semicolons or comments.
#
# Partial results are immutable lists (each step links one new cell to the
# previous ones): nearley completes a rule once for every prefix of a command
# it is still reading, so appending in place would record a command once per
# prefix. The lists become arrays when a command, block or file is complete.
@preprocessor typescript
@{%
import { nftLexer } from './nft-lexer';
import type { NftCommand, NftItem } from './nft-ast';
type Tok = { type: string; value: string; text: string; line: number; col: number };
interface Cell<T> { v: T; prev: Cell<T> | null }
const toArray = <T>(c: Cell<T> | null): T[] => { const out: T[] = []; for (let x = c; x; x = x.prev) out.push(x.v); return out.reverse(); };
interface Body { cmds: Cell<NftCommand> | null; sep: NftCommand['sep'] }
const word = ([t]: [Tok]): NftItem => ({ kind: 'word', text: t.value, line: t.line, col: t.col });
const str = ([t]: [Tok]): NftItem => ({ kind: 'string', text: t.value.slice(1, -1), line: t.line, col: t.col });
const withCmd = (b: Body, c: Cell<NftItem>, next: NftCommand['sep']): Body => ({ cmds: { v: { items: toArray(c), sep: b.sep }, prev: b.cmds }, sep: next });
const sepKind = (s: Tok): NftCommand['sep'] => (s.type === 'semi' ? 'semi' : 'nl');
const done = (b: Body, c?: Cell<NftItem>): NftCommand[] => toArray(c ? withCmd(b, c, b.sep).cmds : b.cmds);
%}
@lexer nftLexer

file -> body                       {% ([b]) => done(b) %}
  | body cmd                       {% ([b, c]) => done(b, c) %}

# commands each ended by a separator (empty ones between separators are nothing)
body -> null                       {% () => ({ cmds: null, sep: 'start' }) %}
  | body sep                       {% ([b, s]) => (b.cmds ? { cmds: b.cmds, sep: b.sep === 'start' ? 'start' : b.sep } : b) %}
  | body cmd sep                   {% ([b, c, s]) => withCmd(b, c, sepKind(s)) %}

cmd -> item                        {% ([i]) => ({ v: i, prev: null }) %}
  | cmd item                       {% ([c, i]) => ({ v: i, prev: c }) %}

item -> %word                      {% word %}
  | %string                        {% str %}
  | %comma                         {% ([t]) => ({ kind: 'comma', line: t.line, col: t.col }) %}
  | %lbrace body %rbrace           {% ([o, b, c]) => ({ kind: 'block', body: done(b), line: o.line, col: o.col, end: { line: c.line, col: c.col } }) %}
  | %lbrace body cmd %rbrace       {% ([o, b, x, c]) => ({ kind: 'block', body: done(b, x), line: o.line, col: o.col, end: { line: c.line, col: c.col } }) %}

sep -> %nl {% id %} | %semi {% id %} | %comment {% id %}
