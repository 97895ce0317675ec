# The structure of an iptables-save file: one statement a line.
@preprocessor typescript
@{%
import { restoreLexer } from './restore-lexer';
import type { RestoreStatement } from './restore-ast';
const at = (t: { line: number; col: number; text: string }) => ({ line: t.line, col: t.col, text: t.text });
%}
@lexer restoreLexer

file -> line (%nl line):* {% ([first, rest]) => [first, ...rest.map((r: unknown[]) => r[1])].filter((s): s is RestoreStatement => s !== null) %}

line -> null      {% () => null %}
  | %blank        {% () => null %}
  | %comment      {% () => null %}
  | %table        {% ([t]) => ({ kind: 'table', ...at(t) }) %}
  | %chain        {% ([t]) => ({ kind: 'chain', ...at(t) }) %}
  | %commit       {% ([t]) => ({ kind: 'commit', ...at(t) }) %}
  | %line         {% ([t]) => ({ kind: 'rule', ...at(t) }) %}
