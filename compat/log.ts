/** The logger: quiet by default; BPFTABLES_LOG=debug or --verbose raises it. Writes to stderr. */
import pino from 'pino';

export const log = pino(
  { name: 'bpftables', level: process.env.BPFTABLES_LOG ?? 'warn', base: undefined },
  pino.destination({ fd: 2, sync: true }),
);

export function setVerbose(): void {
  if (!process.env.BPFTABLES_LOG) log.level = 'debug';
}
