# The structure of an iptables-save file: one statement a line.
@preprocessor typescript
@{%
import { restoreLexer } from './restore-lexer';
import type { RestoreStatement } from './restore-ast';
const at = (t: { line: number; col: number; text: string; offset: number }) => ({ line: t.line, col: t.col, text: t.text, offset: t.offset });
// a block of consecutive rule lines is one token and one statement (the grammar only needs their place):
// xlate/restore.ts reads its lines where they are, without a string or an object per line
%}
@lexer restoreLexer

# Left recursion, appending in place: the grammar is unambiguous, so each partial list has one owner
# (nearley's :* would copy the list at every line, quadratic in the file size).
file -> line              {% ([l]) => l as RestoreStatement[] %}
  | file %nl line         {% ([f, , l]) => { for (const s of l as RestoreStatement[]) (f as RestoreStatement[]).push(s); return f; } %}

line -> null      {% () => [] %}
  | %blank        {% () => [] %}
  | %comment      {% () => [] %}
  | %table        {% ([t]) => [{ kind: 'table', ...at(t) }] %}
  | %chain        {% ([t]) => [{ kind: 'chain', ...at(t) }] %}
  | %commit       {% ([t]) => [{ kind: 'commit', ...at(t) }] %}
  | %rules        {% ([t]) => [{ kind: 'rules', ...at(t) }] %}
  | %line         {% ([t]) => [{ kind: 'rules', ...at(t) }] %}
