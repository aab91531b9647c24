import dotenv from 'dotenv';
import { ConfigError, onStopSignal } from '@cairn/shared';
import { loadServerConfig } from './config/server-config.ts';
import { DatabaseUnavailableError } from './db/database.ts';
import { createLogger } from './logger.ts';
import { startServer } from './server.ts';

dotenv.config({ quiet: true });

try {
  const config = loadServerConfig(process.env);
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log);
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
