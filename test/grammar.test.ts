import t from 'tap';
import { splitArgs, splitQuoted } from '../grammar/restore-lexer';
import { parseStatements } from '../xlate/restore';

t.test('argument splitting follows iptables-restore quoting', async (t) => {
  t.same(splitArgs('-A INPUT -j ACCEPT').map((a) => a.text), ['-A', 'INPUT', '-j', 'ACCEPT']);
  t.same(splitArgs('-m comment --comment "two words"').map((a) => a.text), ['-m', 'comment', '--comment', 'two words']);
  t.same(splitArgs('--comment "a \\"quoted\\" \\\\ word"').map((a) => a.text), ['--comment', 'a "quoted" \\ word']);
  t.same(splitArgs('--comment ab"c d"e').map((a) => a.text), ['--comment', 'abc de']);
  t.same(splitArgs('--comment ""').map((a) => a.text), ['--comment', '']);
  t.same(splitArgs('  -A\tX  ').map((a) => [a.text, a.col]), [['-A', 3], ['X', 6]], 'columns are 1-based');
  t.throws(() => splitArgs('--comment "open'), /unterminated quoted string/);
});

t.test('the fast path for unquoted lines splits exactly like the lexer', async (t) => {
  const lines = ['-A INPUT -j ACCEPT', '  -A\tX  ', '-A INPUT -s 10.0.0.0/8 ! -d 1.2.3.4 -p tcp -m tcp --dport 22:80 -j DROP', '', '   ', 'x'];
  for (const l of lines) t.same(splitArgs(l), splitQuoted(l), JSON.stringify(l));
});

t.test('file structure with positions', async (t) => {
  const st = parseStatements('# c\n*filter\n:INPUT ACCEPT [1:2]\n\n-A INPUT -j DROP\nCOMMIT\n', 'f');
  t.same(st.map((s) => [s.kind, s.line]), [['table', 2], ['chain', 3], ['rules', 5], ['commit', 6]]);
  t.same(parseStatements('*filter\r\nCOMMIT', 'f').map((s) => s.kind), ['table', 'commit'], 'CRLF and no final newline');
  t.equal(parseStatements('COMMIT x\n', 'f')[0]!.kind, 'rules', '"COMMIT x" is not a COMMIT');
  // consecutive rule lines are one statement; the lines after it are counted through it
  const block = parseStatements('*filter\n-A INPUT -j DROP\r\n-A INPUT -j ACCEPT\n[1:2] -A INPUT\n# c\nCOMMIT\n -A x\n', 'f');
  t.same(block.map((s) => [s.kind, s.line, s.text]), [['table', 1, '*filter'], ['rules', 2, '-A INPUT -j DROP\r\n-A INPUT -j ACCEPT\n[1:2] -A INPUT'], ['commit', 6, 'COMMIT'], ['rules', 7, ' -A x']]);
  // each statement says where its text starts in the input (rule blocks are read there)
  const input = '*filter\n-A INPUT -j DROP\r\n-A INPUT -j ACCEPT\n[1:2] -A INPUT\n# c\nCOMMIT\n -A x\n';
  t.same(block.map((s) => s.offset), [0, 8, 64, 71], 'offsets');
  t.ok(block.every((s) => input.startsWith(s.text, s.offset)), 'the text is at its offset');
  t.throws(() => parseStatements('*filter\n-A INPUT -j DROP\n-A INPUT -j ACCEPT\n:X\rY\n', 'f'), { message: 'syntax error', where: { file: 'f', line: 4 } }, 'a lexer error after a block names its line');
  // a character no token takes (a lone CR): the error still says where
  t.throws(() => parseStatements('*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT\rDROP\nCOMMIT\n', 'f'), { message: 'syntax error', where: { file: 'f', line: 3 } }, 'a lexer error names its line');
});
