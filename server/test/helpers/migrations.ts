import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, inject } from 'vitest';

const MIGRATIONS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../drizzle');

/** A copy of the migrations folder whose journal ends at `tag`: migrating with it stops there. */
export async function migrationsUpTo(tag: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-migrations-'));
  await cp(MIGRATIONS, dir, { recursive: true });
  const journalPath = path.join(dir, 'meta/_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: { tag: string }[] };
  const last = journal.entries.findIndex((e) => e.tag === tag);
  expect(last, `migration ${tag} exists`).toBeGreaterThanOrEqual(0);
  journal.entries = journal.entries.slice(0, last + 1);
  await writeFile(journalPath, JSON.stringify(journal));
  return dir;
}

/** The server a database kind's scratch databases are made on. */
export function baseUrl(kind: string): string {
  const url = kind === 'embedded' ? inject('embeddedPostgresUrl') : process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (!url) throw new Error('no database for this kind');
  return url;
}
