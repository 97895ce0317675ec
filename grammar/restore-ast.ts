/**
 * One statement of an iptables-save file, with its position (1-based line
 * and column): a table, chain or COMMIT line, or `rules`, a block of
 * consecutive rule lines (one or more, each a rule or another command).
 */
export interface RestoreStatement {
  kind: 'table' | 'chain' | 'commit' | 'rules';
  line: number;
  col: number;
  /** the line as written; for `rules`, the block's lines joined by their line breaks (a line may end in a CR) */
  text: string;
  /** where `text` starts in the input (UTF-16 units): rule blocks are read there, in the input itself */
  offset: number;
}
