/**
 * A file version with its path and client: versions refer to their path
 * (client_paths, stored once per client, decision 92). Select
 * `versionColumns` `.from(fileVersions).innerJoin(clientPaths, versionPathJoin)`.
 */
import { eq, getTableColumns } from 'drizzle-orm';
import { clientPaths, fileVersions } from './schema.ts';

export const versionColumns = { ...getTableColumns(fileVersions), path: clientPaths.path, clientId: clientPaths.clientId };
export const versionPathJoin = eq(clientPaths.id, fileVersions.pathId);

export type VersionRow = typeof fileVersions.$inferSelect & { path: string; clientId: string };
