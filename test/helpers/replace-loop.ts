/**
 * Soak driver, run inside a namespace: `node replace-loop.js N FILE...`
 * restores the files in turn N times in this one process (the engine's
 * replacement path, without a process start each time); exits 1 on the
 * first failure.
 */
import { restoreMain } from '../../compat/iptables-restore';

const [count, ...files] = process.argv.slice(2);
const io = { out: (): void => undefined, err: (s: string): void => { process.stderr.write(s); } };
for (let i = 0; i < Number(count); i++) {
  if (restoreMain('iptables-restore', [files[i % files.length]!], io) !== 0) { process.stderr.write(`replacement ${i} failed\n`); process.exit(1); }
}
