/**
 * vitest globalSetup: one embedded PostgreSQL for the whole test run (the
 * same code the server uses with DATABASE_URL unset), in a temporary
 * DATA_DIR, without fsync. It holds `cairn_template`, migrated once; every
 * test file clones a scratch database from it (test-database.ts), which is
 * much faster than migrating each one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/database.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the run's embedded PostgreSQL (its own database, `cairn`, which no test uses). */
    embeddedPostgresUrl: string;
  }
}

export const TEMPLATE_DATABASE = 'cairn_template';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-test-pg-'));
  const cluster = await startEmbeddedPostgres({ dataDir, log: pino({ level: 'silent' }), durable: false });
  const admin = postgres(cluster.connectionOptions());
  await admin.unsafe(`create database ${TEMPLATE_DATABASE}`);
  await admin.end();
  const template = await openDatabase({ databaseUrl: cluster.url(TEMPLATE_DATABASE), maxConnections: 1 });
  await template.close();
  project.provide('embeddedPostgresUrl', cluster.url());
  return async () => {
    await cluster.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
