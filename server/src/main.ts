/**
 * The server's entry point. Start-up order is chosen for speed:
 * only the configuration, the logger and the database's preparation are
 * imported first; the embedded cluster's initdb and postmaster start (child
 * processes) and the migrations run while the rest of the server (Fastify,
 * its routes, TypeBox, drizzle's query builder: most of the start-up time
 * under tsx) is imported.
 */
import { setFlagsFromString } from 'node:v8';
import dotenv from 'dotenv';
import { ConfigError } from '@cairn/shared/env';
import { onStopSignal } from '@cairn/shared/process';
import { loadServerConfig } from './config/server-config.ts';
import { DatabaseUnavailableError } from './db/database-errors.ts';
import { prepareDatabase } from './db/prepare-database.ts';
import { createLogger } from './logger.ts';
import { HEAP_GROWING_PERCENT } from './node-flags.ts';

dotenv.config({ quiet: true });

try {
  const config = loadServerConfig(process.env);
  const log = createLogger(config.logLevel);
  const prepared = prepareDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log });
  // Awaited by startServer; until then a failure must not count as unhandled.
  prepared.catch(() => {});
  const { startServer } = await import('./server.ts');
  const server = await startServer(config, log, { prepared });
  // Once started: while the modules load, the heap only grows, and collecting
  // at every 30% of it would slow the start (decision 178).
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  onStopSignal(shutdown);
} catch (error) {
  if (error instanceof ConfigError || error instanceof DatabaseUnavailableError) {
    console.error(error.message);
    process.exit(1);
  }
  console.error(error);
  process.exit(1);
}
