// Runs one of the agent package's TypeScript entry points (no build step; see docs/decisions.md 1):
// in this process where node strips types itself (22.18 and later, as the
// images' Node 24; decision 182), else through tsx's CLI.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Starts `entry` (relative to the package's src/) with this process's arguments. */
export async function launch(entry) {
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', entry);
  if (process.features.typescript) {
    // process.argv is unchanged: the entry point reads its arguments from argv.slice(2) as before.
    await import(pathToFileURL(main).href);
    return;
  }
  const require = createRequire(import.meta.url);
  const tsxCli = require.resolve('tsx/cli');
  const child = spawn(process.execPath, [tsxCli, main, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
