/**
 * The images run the sources with Node's own type stripping, not tsx
 * (decision 182), while development and the other tests use tsx, which
 * accepts more: a relative import naming `./x.js` or no extension, a JSON
 * import without `with { type: 'json' }`, a parameter property or an enum.
 * The compose smoke test only reaches the modules a start-up and a backup
 * load; here every module of the three workspaces is imported by the
 * images' Node, so one loaded lazily (a restore, an email notifier, the
 * PGlite import) cannot break only in production.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';
import { ensureImageNode } from './image-node.ts';

/** Entry points run their program when imported; the smoke test starts them. */
const ENTRY_POINTS = new Set(['server/src/main.ts', 'server/src/recover.ts', 'client/src/main.ts', 'client/src/cli/main.ts']);

function sourceModules(): string[] {
  return ['shared/src', 'server/src', 'client/src'].flatMap((dir) =>
    readdirSync(path.join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => path.posix.join(dir, file.split(path.sep).join('/')))
      .filter((file) => !ENTRY_POINTS.has(file)),
  );
}

const IMPORT_ALL = `
const { pathToFileURL } = require('node:url');
const failures = [];
(async () => {
  for (const file of JSON.parse(process.argv[1])) {
    try { await import(pathToFileURL(file).href); } catch (error) { failures.push(file + ': ' + String(error).split('\\n')[0]); }
  }
  console.log(JSON.stringify(failures));
  process.exit(0);
})();
`;

describe("the sources under the images' Node, without tsx", () => {
  it('every module of shared, server and client imports with type stripping alone', () => {
    const modules = sourceModules();
    expect(modules.length).toBeGreaterThan(100);
    const node = path.join(ensureImageNode(), 'node');
    const output = execFileSync(node, ['-e', IMPORT_ALL, JSON.stringify(modules.map((m) => path.join(REPO_ROOT, m)))], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      timeout: 120_000,
    });
    expect(JSON.parse(output.trim().split('\n').at(-1) ?? '[]')).toEqual([]);
  });

  it('a module using syntax stripping cannot erase fails there (the check is not vacuous)', () => {
    const node = path.join(ensureImageNode(), 'node');
    const run = (source: string) =>
      execFileSync(node, ['--input-type=module-typescript', '-e', source], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(run('const n: number = 1; console.log(n);').trim()).toBe('1');
    expect(() => run('class C { constructor(private readonly x: number) {} } console.log(new C(1));')).toThrow(/TypeScript parameter property is not supported in strip-only mode/);
  });
});
