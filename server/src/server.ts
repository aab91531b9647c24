import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { buildApp, type App } from './app.ts';
import type { AppContext } from './app-context.ts';
import { createBlobStore, createExportStore, createReplicaStore } from './blob/create-blob-store.ts';
import type { ServerConfig } from './config/server-config.ts';
import { createNotifier } from './alerts/notifiers/create-notifier.ts';
import { openDatabase } from './db/database.ts';
import type { PreparedDatabase } from './db/prepare-database.ts';
import { startPeriodicJobs } from './jobs/periodic-jobs.ts';
import { alertRecipientLookup, alertWebhookLookup } from './services/alert-recipients.service.ts';
import { registerServer } from './services/server-registry.service.ts';
import { ensureInitialAdmin } from './services/users.service.ts';

export interface RunningServer {
  app: App;
  ctx: AppContext;
  url: string;
  close(): Promise<void>;
}

export interface StartServerOptions {
  /** The database (the embedded PostgreSQL started, migrations applied) already being prepared by main.ts; prepared here when absent. */
  prepared?: Promise<PreparedDatabase> | undefined;
}

/** Opens storage, applies migrations, and listens. Used by main.ts and by tests that need a real server. */
export async function startServer(config: ServerConfig, log: Logger, options: StartServerOptions = {}): Promise<RunningServer> {
  // The blob store's sweep of leftovers does not wait for the database's start and migrations.
  const [opened, created, createdReplica, createdExports] = await Promise.allSettled([
    openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, pgliteImport: config.pgliteImport, log, prepared: options.prepared }),
    createBlobStore(config, log),
    createReplicaStore(config, log),
    createExportStore(config, log),
  ]);
  if (opened.status === 'rejected' || created.status === 'rejected' || createdReplica.status === 'rejected' || createdExports.status === 'rejected') {
    if (opened.status === 'fulfilled') await opened.value.close();
    if (created.status === 'fulfilled') await created.value.close();
    if (createdReplica.status === 'fulfilled') await createdReplica.value?.close();
    if (createdExports.status === 'fulfilled') await createdExports.value?.close();
    throw [opened, created, createdReplica, createdExports].find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason;
  }
  const database = opened.value;
  const blobs = created.value;
  const replica = createdReplica.value;
  const exports = createdExports.value;
  const alertNotifier = createNotifier(config, log, { recipients: alertRecipientLookup(database.db), webhooks: alertWebhookLookup(database.db) });
  const ctx: AppContext & { serverId: string } = { config, database, blobs, replica, exports, log, alertNotifier, serverId: randomUUID() };
  // The admin's password hash (scrypt, on the thread pool) while the routes are registered.
  const [, app] = await Promise.all([ensureInitialAdmin(ctx), buildApp(ctx)]);
  const address = await app.listen({ port: config.port, host: config.host });
  log.info(
    { database: database.location, blobStore: blobs.location, replicaStore: replica?.location ?? null, dataDir: config.dataDir, url: address },
    `Cairn server listening on ${address}; metadata in ${database.location}; blobs in ${blobs.location}`,
  );
  // Before the jobs start, so the first job lock taken is already shown.
  const registration = await registerServer(ctx, address);
  const jobs = startPeriodicJobs(ctx);
  return {
    app,
    ctx,
    url: address,
    async close() {
      await jobs.stop();
      await app.close();
      await registration.stop();
      // After the jobs and requests that raise alerts: what is still queued goes out now.
      await alertNotifier.close();
      await blobs.close();
      await replica?.close();
      await exports?.close();
      await database.close();
    },
  };
}
