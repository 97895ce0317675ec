/**
 * The logger: pino, quiet by default (level "warn"); BPFTABLES_LOG=debug or
 * --verbose raises it. Writes to stderr. pino is loaded on the first message
 * that passes the level, so commands that log nothing do not pay for it.
 * At the default level the warnings and errors that pass are messages to the
 * user, so they are written as text (`COMMAND: warning: ...`, coloured on a
 * terminal); with a raised level everything is pino's JSON, for logs.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { paint } from './colour';
import { writeStderr } from './output';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type Level = keyof typeof LEVELS;

let level: Level = (process.env.BPFTABLES_LOG as Level) in LEVELS ? (process.env.BPFTABLES_LOG as Level) : 'warn';
let real: Logger | undefined;

function logger(): Logger {
  if (!real) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pino = require('pino') as typeof import('pino');
    real = pino({ name: 'bpftables', level, base: undefined }, pino.destination({ fd: 2, sync: true }));
  }
  return real;
}

type LogFn = (obj: object | string, msg?: string) => void;
const at = (l: Level): LogFn => (obj, msg) => {
  if (LEVELS[l] < LEVELS[level]) return;
  if (level === 'warn' && !process.env.BPFTABLES_LOG) {
    const text = typeof obj === 'string' ? obj : msg ?? JSON.stringify(obj);
    const kind = l === 'warn' ? 'warning' : 'error';
    writeStderr(paint(kind, `${path.basename(process.argv[1] ?? 'bpftables')}: ${kind}: ${text}\n`));
    return;
  }
  if (typeof obj === 'string') logger()[l](obj); else logger()[l](obj, msg);
};

export const log = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };

export function setVerbose(): void {
  if (!process.env.BPFTABLES_LOG) { level = 'debug'; if (real) real.level = 'debug'; }
}
