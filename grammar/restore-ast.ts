/** One statement of an iptables-save file, with its position (1-based line and column). */
export interface RestoreStatement {
  kind: 'table' | 'chain' | 'commit' | 'rule';
  line: number;
  col: number;
  /** the whole line, as written */
  text: string;
}
