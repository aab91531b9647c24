import type { Logger } from 'pino';
import type { AlertNotifier } from './alerts/alert-event.ts';
import type { BlobStore } from './blob/blob-store.ts';
import type { ServerConfig } from './config/server-config.ts';
import type { Database } from './db/database.ts';

/** Everything a route or job needs, built once in main.ts (or by a test). */
export interface AppContext {
  config: ServerConfig;
  database: Database;
  blobs: BlobStore;
  /** The replica store (REPLICA_DIR or REPLICA_S3_*, decision 161): receives every pack, serves reads the primary cannot. */
  replica?: BlobStore;
  /** Where the metadata exports go (decision 167): the replica's `exports/`, present exactly when the replica is. */
  exports?: BlobStore;
  log: Logger;
  /** Receives the alerts the engine opens and resolves; absent: nobody is notified (the dashboard still shows them). */
  alertNotifier?: AlertNotifier;
  /** This process's id in the `servers` table (decision 149); absent in tests that build a context without registering. */
  serverId?: string;
}
