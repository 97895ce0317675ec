# The structure of an iptables-save file: one statement a line.
@preprocessor typescript
@{%
import { restoreLexer } from './restore-lexer';
import type { RestoreStatement } from './restore-ast';
const at = (t: { line: number; col: number; text: string }) => ({ line: t.line, col: t.col, text: t.text });
// a block of consecutive rule lines is one token (the grammar only needs their place); one statement each
const ruleLines = (t: { line: number; text: string }) =>
  t.text.split('\n').map((text, i) => ({ kind: 'rule' as const, line: t.line + i, col: 1, text: text.endsWith('\r') ? text.slice(0, -1) : text }));
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
  | %rules        {% ([t]) => ruleLines(t) %}
  | %line         {% ([t]) => [{ kind: 'rule', ...at(t) }] %}
