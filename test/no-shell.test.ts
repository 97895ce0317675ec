/**
 * No shell command line is ever built: every program bpftables runs gets an
 * argument vector (execFile/spawn without a shell), so no rule, set name,
 * file name or environment value can become shell syntax. Checked over the
 * sources of everything that ships (bin/ and the library folders).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const ROOT = path.join(__dirname, '..', '..');
const SHIPPED = ['bin', 'compat', 'native', 'xlate', 'cgen', 'grammar'];
const FORBIDDEN: [RegExp, string][] = [
  [/\bexecSync\s*\(/, 'execSync runs a shell'],
  [/child_process['"]\)\s*\.exec\s*\(|\{[^}]*\bexec\b[^}]*\}\s*from\s*['"](node:)?child_process['"]/, 'child_process.exec runs a shell'],
  [/\bshell\s*:\s*(true|['"`])/, 'a spawn option that runs a shell'],
  [/['"`](\/bin\/)?(ba)?sh['"`]\s*,\s*\[\s*['"`]-c['"`]/, 'sh -c with a command string'],
];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : /\.(ts|js)$/.test(e.name) || dir.endsWith('bin') ? [p] : [];
  });
}

t.test('no shipped source builds a shell command', async (t) => {
  const files = SHIPPED.flatMap((d) => sources(path.join(ROOT, d)));
  t.ok(files.length > 50, `${files.length} files read`);
  const found: string[] = [];
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    for (const [re, why] of FORBIDDEN) if (re.test(text)) found.push(`${path.relative(ROOT, f)}: ${why}`);
  }
  t.same(found, [], 'every child process gets an argument vector');
  // the check itself sees what it looks for
  t.ok(FORBIDDEN.some(([re]) => re.test("execSync(`ip ${x}`)")) && FORBIDDEN.some(([re]) => re.test("spawn('sh', ['-c', cmd])")), 'the patterns catch the forbidden forms');
});
