# The structure of an iptables-save file: one statement a line.
@preprocessor typescript
@{%
import { restoreLexer } from './restore-lexer';
import type { RestoreStatement } from './restore-ast';
const at = (t: { line: number; col: number; text: string }) => ({ line: t.line, col: t.col, text: t.text });
%}
@lexer restoreLexer

# Left recursion, appending in place: the grammar is unambiguous, so each partial list has one owner
# (nearley's :* would copy the list at every line, quadratic in the file size).
file -> line              {% ([l]) => (l ? [l] : []) as RestoreStatement[] %}
  | file %nl line         {% ([f, , l]) => { if (l) (f as RestoreStatement[]).push(l); return f; } %}

line -> null      {% () => null %}
  | %blank        {% () => null %}
  | %comment      {% () => null %}
  | %table        {% ([t]) => ({ kind: 'table', ...at(t) }) %}
  | %chain        {% ([t]) => ({ kind: 'chain', ...at(t) }) %}
  | %commit       {% ([t]) => ({ kind: 'commit', ...at(t) }) %}
  | %line         {% ([t]) => ({ kind: 'rule', ...at(t) }) %}
