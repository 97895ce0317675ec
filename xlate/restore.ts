/**
 * iptables-save text → IR tables, with iptables-restore's rules: `*table`
 * opens a table, `:CHAIN POLICY [p:b]` declares chains, rule lines follow,
 * `COMMIT` closes it. Errors carry file, line, column and option.
 */
import nearley from 'nearley';
import grammar from '../grammar/restore.generated';
import type { RestoreStatement } from '../grammar/restore-ast';
import { type Arg, ArgvError, splitArgs } from '../grammar/restore-lexer';
import { BpftablesError, paramError, unsupported } from './errors';
import { type Chain, commandName, type Counters, emptyFilterTable, type Family, isBuiltin, OTHER_TABLES, type Policy, type Table } from './ir';
import type { NameDb } from './names';
import { applyCommand, checkInterfaces, listRules } from './commands';
import { parseIptablesArgv, toCommand } from './command-parse';
import { listTable, verboseReport, verboseRuleLine } from './list';
import { chainOrder } from './save';
import { OtherFamilyRule, parseRuleArgs, type RuleCommand } from './rule-parse';
import { packChain, PackedRule, packedRows, type PackedRows, PF, RuleBlock, scanPacked } from './packed';
import { validateTable } from './validate';

export interface RestoreOptions {
  file: string;
  /** 4: iptables-restore (default), 6: ip6tables-restore */
  family?: Family;
  /** non-fatal notes for stderr */
  warn?: (message: string) => void;
  db: NameDb;
  /** keep counters given in the input (-c) */
  counters: boolean;
  /** the live table by name, whose built-in policies carry over when the input does not declare them (asked only then) */
  current?: (table: string) => Table | undefined;
  /** --noflush: start from the live table instead of an empty one */
  noflush?: boolean;
  /** leave jumps, loops and depth unchecked at COMMIT (bpftables check reports them itself) */
  noValidate?: boolean;
  /** -v: say what is flushed, deleted and added, as iptables-restore -v does (into the output) */
  verbose?: boolean;
  /** told how far the parse is (rule lines done of all lines), every 1000 rule lines (a progress bar) */
  progress?: (done: number, total: number) => void;
}

export interface RestoreResult {
  /** committed tables in input order */
  tables: Table[];
  /** what listing commands (-S, -L) in the input printed */
  output: string;
}


/** Split text into statements with the nearley grammar. */
export function parseStatements(text: string, file: string): RestoreStatement[] {
  const parser = new nearley.Parser(nearley.Grammar.fromCompiled(grammar));
  try {
    parser.feed(text);
  } catch (e) {
    // a parser error names the token; a lexer error (a character no token takes, such as a lone CR) only says where
    const tok = (e as { token?: { line: number; col: number } }).token;
    const m = /line (\d+) col (\d+)/.exec(String((e as Error).message));
    throw new BpftablesError('syntax error', 2, { file, line: tok?.line ?? (m ? Number(m[1]) : 1), col: tok?.col ?? (m ? Number(m[2]) : undefined) });
  }
  if (parser.results.length !== 1) throw new BpftablesError(`internal: ambiguous parse (${parser.results.length})`, 1, { file });
  return parser.results[0] as RestoreStatement[];
}

function parseCounters(text: string): Counters | undefined {
  const m = /^\[(\d+):(\d+)\]$/.exec(text);
  return m ? { packets: Number(m[1]), bytes: Number(m[2]) } : undefined;
}

export function parseRestore(text: string, o: RestoreOptions): RestoreResult {
  const statements = parseStatements(text, o.file);
  const family = o.family ?? 4;
  const ruleOpts = { db: o.db, family, warn: o.warn };
  // iptables-restore -v reports nothing at all with --noflush
  const verbose = o.verbose === true && !o.noflush;
  const tables: Table[] = [];
  let output = '';
  let open: { table: Table; declared: Set<string>; line: number } | null = null;
  let lastLine = 0;
  // chains by name, rebuilt when a command replaces the table (commands copy it) or a name is missing
  // (a chain declared since); a table only gains chains in place
  let byName = new Map<string, Chain>();
  let indexed: Table | undefined;
  const chainNamed = (at: { table: Table }, name: string): Chain | undefined => {
    let c = indexed === at.table ? byName.get(name) : undefined;
    if (!c) {
      byName = new Map(at.table.chains.map((x) => [x.name, x]));
      indexed = at.table;
      c = byName.get(name);
    }
    return c;
  };
  const addRules = (table: Table, chain: Chain, cmd: RuleCommand, line: number, counters: Counters | undefined): void => {
    for (const rule of cmd.rules) {
      if (verbose) output += verboseRuleLine(rule, family, o.db);
      rule.src ??= { file: o.file, line }; // the fast path gives its rules theirs
      // "[p:b]" prefixes count only with --counters; an in-line "-c p b" always does (as in iptables-restore)
      if (o.counters && counters) rule.counters = { ...counters };
      checkInterfaces(chain.name, rule);
    }
    if (cmd.op === 'append') { for (const r of cmd.rules) chain.rules.push(r); }
    else {
      if (cmd.index > chain.rules.length + 1) throw new BpftablesError(`${commandName(table.family)}: Index of insertion too big.`, 1);
      for (const r of cmd.rules) chain.rules.splice(cmd.index - 1, 0, r); // one by one at the same place, as iptables does
    }
  };

  // the packed form of plain rule lines (xlate/packed.ts): one block of columns for the whole input
  // (sized for the whole text at a line every 24 characters: memory never written is never mapped, and a
  // block that grows copies every column)
  const block = family === 4 ? new RuleBlock(o.file, Math.max(256, Math.ceil(text.length / 24))) : undefined;
  let lastChainName = '', lastChain: Chain | undefined, lastTable: Table | undefined;
  const totalLines = o.progress ? countLines(text) : 0;
  let seen = 0;
  /** the line of the statement (or the block's line) being read, for errors */
  let at = 0;

  /** One line of a rule block (not in the packed form, or IPv6): a rule or another command. */
  const ruleLine = (lineText: string, line: number): void => {
    if (!open) throw new BpftablesError('no table specified', 1, { col: 1 });
    let args = splitArgs(lineText);
    let counters: Counters | undefined;
    const first = args[0];
    if (first && first.text.startsWith('[')) {
      counters = parseCounters(first.text);
      if (!counters) throw paramError(`invalid counters \`${first.text}'`, undefined, first.col);
      args = args.slice(1);
    }
    // one pass over the arguments for what a plain rule line does not hold
    let table = false, wait: Arg | undefined, other = false;
    for (const a of args) {
      if (!SPECIAL_ARGS.has(a.text)) continue;
      if (a.text === '-t' || a.text === '--table') table = true;
      else if (WAIT_ARGS.has(a.text)) wait ??= a;
      else other = true;
    }
    if (table) throw paramError('The -t option cannot be used in iptables-restore.\n', '-t');
    if (wait) throw paramError(`You cannot use \`${wait.text.startsWith('--') ? (wait.text === '--wait' ? '-w' : '-W') : wait.text}' from iptables-restore`, wait.text, wait.col);
    if (other) {
      // any other iptables command, applied to the table being built
      const p = parseIptablesArgv(args.map((a) => a.text), family);
      if (p === 'help' || p === 'version') throw paramError('unexpected -h/-V in restore input');
      if (p.cmd === 'S') { output += listRules(open.table, o.db, p.args[0], p.verbose); return; }
      if (p.cmd === 'L') { output += listTable(open.table, { numeric: p.numeric, verbose: p.verbose, exact: p.exact, lineNumbers: p.lineNumbers, db: o.db }, p.args[0]); return; }
      const tc = toCommand(p, ruleOpts)!;
      if (verbose) output += verboseReport(open.table, tc, o.db);
      open.table = applyCommand(open.table, tc, o.db, { validate: false });
      if (tc.op === 'policy') open.declared.add(tc.chain); // an explicit policy is not carried over
      return;
    }
    let cmd;
    try {
      cmd = parseRuleArgs(args, ruleOpts);
    } catch (e) {
      if (e instanceof OtherFamilyRule) return; // a rule for the other family: skipped, as iptables-restore does
      throw e;
    }
    const chain = chainNamed(open, cmd.chain);
    if (!chain) throw new BpftablesError(`chain ${cmd.chain} does not exist`, 1, { col: args[1]?.col });
    addRules(open.table, chain, cmd, line, counters);
  };

  /** The lines of a rule block: the packed form straight into the block, any other line through ruleLine. */
  const ruleBlock = (st: RestoreStatement): void => {
    // the lines where they are in the input (a flat string: the token's text is a slice of it, which
    // every character read would first have to resolve)
    const t = text, stop = st.offset + st.text.length;
    // the packed chain the last line grew (its rows, without a lookup a line), while only packed lines come
    let grownChain: Chain | undefined, grown: PackedRows | undefined;
    for (let from = st.offset, line = st.line; from <= stop; line++) {
      let to = t.indexOf('\n', from);
      if (to < 0 || to > stop) to = stop;
      at = line;
      if (o.progress && ++seen % 1000 === 0) o.progress(seen, totalLines);
      const name = open && block ? scanPacked(t, from, to, block, o.db, line) : undefined;
      if (name !== undefined) {
        const chain = name === lastChainName && lastTable === open!.table ? lastChain : chainNamed(open!, name);
        if (!chain) { block!.count--; throw new BpftablesError(`chain ${name} does not exist`, 1, { col: 4 }); }
        lastChainName = name; lastChain = chain; lastTable = open!.table;
        const row = block!.count - 1;
        if (verbose || (block!.flags[row]! & (PF.IN | PF.OUT))) {
          const rule = new PackedRule(block!, row);
          if (verbose) output += verboseRuleLine(rule, family, o.db);
          checkInterfaces(chain.name, rule);
        }
        // the chain's rules as rows of the block while they are consecutive rows (a packed chain), else objects
        if (chain === grownChain && grown!.to === row) { grown!.to++; } else {
          const rows = packedRows(chain);
          grownChain = undefined;
          if (rows && rows.block === block && rows.to === row) { rows.to++; grownChain = chain; grown = rows; }
          else if (!rows && chain.rules.length === 0) { grown = { block: block!, from: row, to: row + 1 }; packChain(chain, grown); grownChain = chain; }
          else chain.rules.push(new PackedRule(block!, row));
        }
      } else {
        grownChain = undefined; // a generic line may read (and so unpack) any chain
        ruleLine(to > from && t.charCodeAt(to - 1) === 13 ? t.slice(from, to - 1) : t.slice(from, to), line);
      }
      from = to + 1;
    }
  };

  for (const st of statements) {
    lastLine = st.line;
    at = st.line;
    try {
      switch (st.kind) {
        case 'table': {
          const name = st.text.slice(1).trim();
          if (open) throw new BpftablesError(`table \`${name}' opened before COMMIT of \`${open.table.name}'`, 1);
          if (OTHER_TABLES.has(name)) throw unsupported(`table ${name}`, '*' + name, 1);
          if (name !== 'filter') throw new BpftablesError(`table '${name}' does not exist`, 1, { col: 1 });
          const base = o.noflush ? o.current?.(name) : undefined;
          if (verbose) {
            const live = chainOrder((o.current?.(name) ?? emptyFilterTable(family)).chains).map((c) => c.name);
            output += live.map((c) => `Flushing chain \`${c}'\n`).join('') + live.filter((c) => !isBuiltin(c)).map((c) => `Deleting chain \`${c}'\n`).join('');
          }
          const table: Table = base ? { name: base.name, family, chains: base.chains.map((c) => ({ ...c, rules: [...c.rules] })) } : emptyFilterTable(family);
          open = { table, declared: new Set(), line: st.line };
          break;
        }
        case 'chain': {
          if (!open) throw new BpftablesError('no table specified', 1, { col: 1 });
          const parts = splitArgs(st.text.slice(1), 2);
          const name = parts[0]?.text;
          if (!name) throw paramError('empty chain name', undefined, 1);
          if (name.length > 28) throw paramError(`chain name \`${name}' too long (must be under 29 chars)`, undefined, 2);
          const policy = parts[1]?.text;
          const counters = (parts[2] && parseCounters(parts[2].text)) || { packets: 0, bytes: 0 };
          if (parts[2] && !parseCounters(parts[2].text)) throw paramError(`invalid counters \`${parts[2].text}'`, undefined, parts[2].col);
          if (open.declared.has(name)) throw new BpftablesError(`chain ${name} declared twice`, 1, { col: 2 });
          open.declared.add(name);
          if (isBuiltin(name)) {
            if (policy !== 'ACCEPT' && policy !== 'DROP') {
              throw paramError(`Can't set policy \`${policy ?? ''}' on \`${name}'`, undefined, parts[1]?.col ?? 2);
            }
            const c = open.table.chains.find((x) => x.name === name)!;
            c.policy = policy as Policy;
            c.counters = o.counters ? counters : { packets: 0, bytes: 0 };
          } else {
            if (policy !== undefined && policy !== '-') {
              throw paramError(`Can't set policy \`${policy}' on \`${name}' (not a built-in chain)`, undefined, parts[1]?.col);
            }
            const existing = open.table.chains.find((c) => c.name === name);
            if (existing) existing.rules = []; // --noflush: declaring an existing chain flushes it, as iptables does
            else open.table.chains.push({ name, counters: { packets: 0, bytes: 0 }, rules: [] } as Chain);
          }
          break;
        }
        case 'commit': {
          if (!open) throw new BpftablesError('COMMIT without a table', 1, { col: 1 });
          if (!o.noflush && open.table.chains.some((c) => c.policy && !open!.declared.has(c.name))) {
            const cur = o.current?.(open.table.name);
            for (const c of open.table.chains) {
              const old = cur?.chains.find((x) => x.name === c.name);
              if (c.policy && !open.declared.has(c.name) && old?.policy) c.policy = old.policy;
            }
          }
          if (!o.noValidate) validateTable(open.table);
          tables.push(open.table);
          open = null;
          break;
        }
        case 'rules':
          ruleBlock(st);
          // the block's last line (a statement ends there)
          lastLine = at;
          break;
      }
    } catch (e) {
      const where = { file: o.file, line: at };
      if (e instanceof ArgvError) throw new BpftablesError(e.message, 2, { ...where, col: e.col });
      if (e instanceof BpftablesError) throw e.at(where);
      throw e;
    }
  }
  if (open) throw new BpftablesError(`COMMIT expected at line ${lastLine + 1}`, 1, { file: o.file, line: lastLine + 1 });
  return { tables, output };
}

/** Lines of a text (as the rule blocks count them), for the progress bar. */
function countLines(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Commands besides -A/-I that may stand in a rule line. */
const OTHER_COMMANDS = new Set(['-D', '--delete', '-R', '--replace', '-N', '--new-chain', '-X', '--delete-chain', '-F', '--flush',
  '-Z', '--zero', '-P', '--policy', '-E', '--rename-chain', '-C', '--check', '-S', '--list-rules', '-L', '--list']);
const WAIT_ARGS = new Set(['-w', '--wait', '-W', '--wait-interval']);
const SPECIAL_ARGS = new Set([...OTHER_COMMANDS, ...WAIT_ARGS, '-t', '--table']);
