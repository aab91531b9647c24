/**
 * `npm run recover` (in the image: `node src/recover.ts`):
 * rebuilds a server from its replica store alone (storage/recovery.ts,
 * decision 168), with the server's own configuration (DATA_DIR or
 * DATABASE_URL for the new, empty database; S3_* or DATA_DIR for the new
 * primary store; REPLICA_* for the replica the lost server wrote to).
 *
 *   recover --list            the exports in the replica, newest first
 *   recover                   load the newest export and copy every object
 *   recover --export <id>     load that export (8 or more characters of its id)
 *   recover --no-copy         load only; reads fall back to the replica, and verify repairs
 *
 * Exit codes: 0 recovered whole; 1 could not recover (the message says why);
 * 3 recovered, but objects were missing on the replica (their keys are logged).
 */
import { parseArgs } from 'node:util';
import dotenv from 'dotenv';
import { ConfigError } from '@cairn/shared/env';
import { loadServerConfig } from './config/server-config.ts';
import { DatabaseUnavailableError } from './db/database-errors.ts';
import { createLogger } from './logger.ts';
import { listReplicaExports, recoverFromReplica, RecoveryError } from './storage/recovery.ts';

dotenv.config({ quiet: true });

try {
  const { values } = parseArgs({
    options: { list: { type: 'boolean' }, export: { type: 'string' }, 'no-copy': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log('usage: recover [--list] [--export <id>] [--no-copy]   (docs/deployment.md, "Rebuilding a server from the replica")');
    process.exit(0);
  }
  const config = loadServerConfig(process.env);
  const log = createLogger(config.logLevel);
  if (values.list) {
    const { exports, damaged } = await listReplicaExports(config, log);
    for (const { id, manifest } of exports) {
      const rows = manifest.tables.reduce((sum, t) => sum + t.rows, 0);
      console.log(`${id}  ${manifest.createdAt}  ${rows} rows  Cairn ${manifest.serverVersion}`);
    }
    for (const id of damaged) console.log(`${id}  damaged (does not hash to its name, or is not an export)`);
    if (exports.length === 0) console.log('no metadata export in the replica store');
    process.exit(0);
  }
  const result = await recoverFromReplica(config, log, { exportId: values.export, copyObjects: !values['no-copy'] });
  console.log(
    `recovered the export of ${result.createdAt} (${result.exportId.slice(0, 12)}): ${result.rows} rows; ` +
      `${result.copied} objects copied from the replica (${result.bytesCopied} bytes), ${result.alreadyThere} already in the primary, ${result.missing.length} missing`,
  );
  process.exit(result.missing.length > 0 ? 3 : 0);
} catch (error) {
  if (error instanceof ConfigError || error instanceof DatabaseUnavailableError || error instanceof RecoveryError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error((error as Error).message);
    process.exit(1);
  }
  console.error(error);
  process.exit(1);
}
