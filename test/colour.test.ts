/**
 * Colours on stderr only on a terminal: errors red, warnings yellow, plain
 * text in pipes, with NO_COLOR and with TERM=dumb; warnings at the default
 * log level are text for the user (`COMMAND: warning: ...`), not JSON.
 * The terminal is a real pseudo-terminal (util-linux `script`).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { colours, paint } from '../compat/colour';
import { BIN, REPO, requireTools } from './helpers/env';

t.test('paint', async (t) => {
  const saved = { NO_COLOR: process.env.NO_COLOR, TERM: process.env.TERM };
  t.teardown(() => { for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v; });
  delete process.env.NO_COLOR; process.env.TERM = 'xterm';
  t.equal(paint('error', 'bad\n', { isTTY: true }), '\x1b[31mbad\x1b[0m\n', 'red on a terminal, the newline outside');
  t.equal(paint('warning', 'hm', { isTTY: true }), '\x1b[33mhm\x1b[0m', 'yellow');
  t.equal(paint('error', 'bad\n', { isTTY: false }), 'bad\n', 'plain in a pipe');
  process.env.NO_COLOR = '1';
  t.notOk(colours({ isTTY: true }), 'NO_COLOR turns it off');
  delete process.env.NO_COLOR; process.env.TERM = 'dumb';
  t.notOk(colours({ isTTY: true }), 'and so does TERM=dumb');
});

t.test('on a terminal and in a pipe', async (t) => {
  if (!requireTools(t, ['script'], 'util-linux')) return;
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
  delete env.NO_COLOR;
  const onTty = (cmd: string): string => spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env }).stdout;
  const cmd = `${path.join(BIN, 'bpftables')} migrate --to nft /nonexistent/file`;
  const tty = onTty(cmd);
  t.match(tty, /\x1b\[31m.*\/nonexistent\/file.*\x1b\[0m/, `an error is red on a terminal: ${JSON.stringify(tty)}`);
  const piped = spawnSync(path.join(BIN, 'bpftables'), ['migrate', '--to', 'nft', '/nonexistent/file'], { encoding: 'utf8', env });
  t.match(piped.stderr, /\/nonexistent\/file/, 'the same error in a pipe');
  t.notMatch(piped.stderr, /\x1b/, 'without colour');
  const warn = `${process.execPath} -e "require('${path.join(REPO, 'dist', 'compat', 'log.js')}').log.warn('careful')"`;
  t.match(onTty(warn), /\x1b\[33m.*: warning: careful\x1b\[0m/, 'a warning is yellow text on a terminal');
  const plain = spawnSync(process.execPath, ['-e', `require('${path.join(REPO, 'dist', 'compat', 'log.js')}').log.warn('careful')`], { encoding: 'utf8', env });
  t.match(plain.stderr, /^\S+: warning: careful\n$/, 'and plain text, not JSON, in a pipe');
  const debug = spawnSync(process.execPath, ['-e', `require('${path.join(REPO, 'dist', 'compat', 'log.js')}').log.warn('careful')`], { encoding: 'utf8', env: { ...env, BPFTABLES_LOG: 'warn' } });
  t.match(debug.stderr, /"msg":"careful"/, 'with BPFTABLES_LOG set it is pino\'s JSON, for logs');
});
