/**
 * A progress bar on stderr for the long runs (restoring or migrating 10k
 * rules or more): only when stderr is a terminal, never in a pipe or a log,
 * and erased when done so that what follows starts on a clean line.
 */
import { stderrIsTerminal } from './output';

const MIN_RULES = 10_000;
const WIDTH = 30;

export interface Progress {
  /** `done` of `total` units of the current phase, which spans the bar from its start to `until` */
  update(done: number, total: number): void;
  /** a new phase (parse, compile, load), from where the bar stands to `until` (0-1) of the whole run */
  phase(label: string, until?: number): void;
  /** erase the bar */
  end(): void;
  /** does it draw (false: updates are ignored, so callers need not count for it) */
  readonly live: boolean;
}

const NONE: Progress = { update() {}, phase() {}, end() {}, live: false };

/**
 * A bar for a run over `rules()` rules, or one that draws nothing (stderr is no terminal, or too few rules).
 * The rules are counted only for a terminal: a pipe or a file (what scripts and the bench give) costs
 * nothing here.
 */
export function progress(command: string, rules: () => number, given?: NodeJS.WriteStream): Progress {
  // process.stderr is made only for a terminal: making it loads node's stream modules (about 5 ms of a
  // restore), which a pipe or a file never needs
  if (given ? !given.isTTY : !stderrIsTerminal()) return NONE;
  if (rules() < MIN_RULES) return NONE;
  const stream = given ?? process.stderr;
  let label = '';
  let last = -1;
  let from = 0, to = 1, at = 0;
  let drawn = false;
  const draw = (fraction: number): void => {
    const filled = Math.round(fraction * WIDTH);
    if (filled === last) return;
    last = filled;
    drawn = true;
    stream.write(`\r${command}: ${label.padEnd(10)} [${'='.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%`);
  };
  return {
    update(done, total) { at = from + (to - from) * (total > 0 ? Math.min(1, done / total) : 1); draw(at); },
    phase(l, until = 1) { label = l; from = at; to = Math.max(at, until); last = -1; draw(at); },
    end() { if (drawn) stream.write('\r\x1b[K'); },
    live: true,
  };
}

/** How many rule lines an iptables-save text holds (lines starting with -A or -I), cheaply. */
export function ruleLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n-'); i >= 0; i = text.indexOf('\n-', i + 2)) n++;
  return n;
}
