/**
 * Whole-table checks done at COMMIT, as the kernel does for iptables: every
 * jump names an existing user chain and no chain reaches itself. (How deep
 * chains may nest is the code generator's limit: cgen/program.ts checks it.)
 * Matches limited to some hooks (mac) are not reachable from the others.
 */
import { BpftablesError, kernelInvalid } from './errors';
import { BUILTIN_CHAINS, commandName, isBuiltin, type Rule, type Table } from './ir';
import { MATCH_HOOKS } from './matches';
import { PackedRule, packedRows, rowTargets } from './packed';
import { TARGETS_UNSUPPORTED } from './rule-parse';

function targetOf(r: Rule): string | undefined {
  return r.verdict.kind === 'jump' || r.verdict.kind === 'goto' ? r.verdict.chain : undefined;
}

function ruleError(msg: string, r: Rule, status: 1 | 2 = 2): BpftablesError {
  return new BpftablesError(msg, status, r.src ? { file: r.src.file, line: r.src.line } : {});
}

export function validateTable(t: Table): void {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  /** rule r's jump or goto to `target` names a user chain of the table */
  const checkTarget = (target: string, r: Rule): void => {
    if (isBuiltin(target)) throw ruleError(`cannot jump to built-in chain ${target}`, r);
    if (!byName.has(target)) {
      if (TARGETS_UNSUPPORTED.has(target)) {
        throw new BpftablesError(`target ${target} is not supported by bpftables yet`, 2, r.src ? { file: r.src.file, line: r.src.line } : {}, '-j', true);
      }
      throw ruleError(`Couldn't load target \`${target}':No such file or directory\n`, r); // iptables prints a blank line after it
    }
  };
  // each chain's targets, once each (a 100k-rule chain is walked once here)
  const targets = new Map<string, string[]>();
  for (const c of t.chains) {
    const seen = new Set<string>();
    const rows = packedRows(c);
    if (rows) {
      // a packed chain: its rows' targets, each checked where it first comes
      const b = rows.block;
      for (let i = rows.from; i < rows.to; i++) {
        const target = b.targetOf(i);
        if (target === undefined || seen.has(target)) continue;
        checkTarget(target, new PackedRule(b, i));
        seen.add(target);
      }
      targets.set(c.name, [...seen]);
      continue;
    }
    const rules = c.rules;
    // indexed: a for-of over a big array allocates an iterator result per element until V8 optimizes it
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      const target = targetOf(r);
      if (target === undefined || seen.has(target)) continue;
      checkTarget(target, r);
      seen.add(target);
    }
    targets.set(c.name, [...seen]);
  }
  // depth-first search for loops and depth
  const depth = new Map<string, number>();
  const onStack = new Set<string>();
  const visit = (name: string, path: string[]): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (onStack.has(name)) {
      const cyc = [...path.slice(path.indexOf(name)), name].join(' -> ');
      throw new BpftablesError(`jump loop: ${cyc}`, 1);
    }
    onStack.add(name);
    let d = 0;
    for (const target of targets.get(name)!) d = Math.max(d, 1 + visit(target, [...path, name]));
    onStack.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const c of t.chains) visit(c.name, []);
  checkMatchHooks(t);
}

/** A match the kernel only allows at some hooks (mac) may not be reached from any other built-in chain. */
function checkMatchHooks(t: Table): void {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  // per chain, in rule order: the rules with a match limited to some hooks, and the first jump to each chain
  // (what the walk below visits; later jumps to a chain it has seen change nothing)
  type Step = { r: Rule; hooks: readonly string[] } | { target: string };
  const steps = new Map<string, Step[]>();
  let anyLimited = false;
  for (const c of t.chains) {
    const list: Step[] = [];
    const jumped = new Set<string>();
    const rows = packedRows(c);
    if (rows) {
      // a packed chain's matches (tcp, udp) are allowed at every hook: only its jumps
      for (const target of rowTargets(rows, new Set())) list.push({ target });
      steps.set(c.name, list);
      continue;
    }
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      // a packed rule's matches (tcp, udp) are allowed at every hook
      if (!(r instanceof PackedRule)) {
        for (const m of r.matches) {
          const rule = MATCH_HOOKS[m.kind];
          const hooks = typeof rule === 'function' ? rule(m) : rule;
          if (hooks) { list.push({ r, hooks }); anyLimited = true; }
        }
      }
      const target = targetOf(r);
      if (target && !jumped.has(target)) { jumped.add(target); list.push({ target }); }
    }
    steps.set(c.name, list);
  }
  if (!anyLimited) return;
  for (const start of BUILTIN_CHAINS) {
    const seen = new Set<string>();
    const walk = (name: string): void => {
      if (seen.has(name)) return;
      seen.add(name);
      for (const step of steps.get(name) ?? []) {
        if ('target' in step) { if (byName.has(step.target)) walk(step.target); continue; }
        if (!step.hooks.includes(start)) throw kernelInvalid(commandName(t.family), step.r.src ? { file: step.r.src.file, line: step.r.src.line } : {});
      }
    };
    walk(start);
  }
}
