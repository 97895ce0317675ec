/**
 * The shape nft.ne gives an nft file: a list of commands; a command is a
 * list of items (words, strings, commas, braced blocks); a block holds
 * commands again. Commas belong to the command they stand in (lists such as
 * `established,related`, set elements). `sep` says what separated a command
 * from the one before it. Positions are 1-based.
 */
export interface Pos { line: number; col: number }
export type NftItem =
  | { kind: 'word'; text: string; line: number; col: number }
  | { kind: 'string'; text: string; line: number; col: number }
  | { kind: 'comma'; line: number; col: number }
  | { kind: 'block'; body: NftCommand[]; line: number; col: number; end: Pos };
export interface NftCommand { items: NftItem[]; sep: 'start' | 'nl' | 'semi' }
