/**
 * The admin REST API under /api/v1/admin (issue 14): the dashboard's main
 * resources as JSON, for scripts holding a personal access token
 * (`Authorization: Bearer cairn_pat_...`). A token acts with its user's
 * permissions, exactly as the dashboard does for that user: other users'
 * clients and alerts are 404, admin-only resources 403 for non-admins, and a
 * read-only token gets 403 on anything that changes state. Changes go
 * through the same services and validation as the dashboard's forms and are
 * audited as the user (naming the token).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { acknowledgeAlert } from '../alerts/alert-engine.ts';
import type { AlertType } from '../alerts/alert-event.ts';
import type { AppContext } from '../app-context.ts';
import { configFormValues, type ClientConfigInput, validateClientConfig } from '../dashboard/client-config-form.ts';
import { createDashboardRepository } from '../dashboard/dashboard.repository.ts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { authenticateApiToken, revokeApiToken } from '../services/api-tokens.service.ts';
import { adminClientsApiRoutes } from './admin-clients-api.routes.ts';
import { adminUsersApiRoutes } from './admin-users-api.routes.ts';
import { actorOf, clientJson, ERRORS, iso, parseApiRetentionRules, TAGS, TOKEN_AUTH, tokenOf, userJson, viewerOf, visibleClient as visibleClientOf } from './admin-api-context.ts';
import { listPathVersions, listRuns, listTreeAsOf } from '../services/backup-repository.ts';
import { findClient, listClients, requestRun, updateClientSettings } from '../services/clients.service.ts';
import { createDownloadLink, downloadLinkUrl, DOWNLOAD_LINK_DEFAULT_SECONDS, expiryError, type DownloadTarget } from '../services/download-links.service.ts';
import { findUser, listUsers } from '../services/users.service.ts';
import { listServers } from '../services/server-registry.service.ts';
import { runMetadataExport } from '../storage/metadata-export.ts';
import { replicaStatus } from '../storage/replication-job.ts';
import { listDamage, listVerifyRuns, startVerifyRun } from '../storage/verify-job.ts';
import { VersionsQuery, VersionsResponse } from '@cairn/shared';
import { registerRestoreJobAdminRoutes } from './admin-restore-jobs.routes.ts';
import {
  ALERT_STATES,
  Acknowledged,
  AdminClientDetail,
  AdminError,
  AlertList,
  AlertsQuery,
  ClientConfigUpdate,
  ClientList,
  DownloadLink,
  NewDownloadLink,
  FilesPage,
  FilesQuery,
  IdParams,
  Me,
  RunList,
  RunRequested,
  RunsQuery,
  MetadataExportReport,
  ReplicaReport,
  ServerList,
  TokenRevoked,
  UserList,
  VerifyReport,
  VerifyStarted,
  AdminUser,
} from './admin-api.schemas.ts';

export const ADMIN_API_PREFIX = '/api/v1/admin';

/** The form's field names as the API's. */
const API_FIELD: Record<string, string> = {
  backupInterval: 'backupIntervalSeconds',
  retentionVersions: 'retention.versions',
  retentionDays: 'retention.days',
};

/** The API's change as the dashboard form would send it, over the stored values. */
function asFormInput(current: ClientConfigInput, change: ClientConfigUpdate): ClientConfigInput {
  const input = { ...current };
  if (change.monitoredPaths !== undefined) input.monitoredPaths = change.monitoredPaths.join('\n');
  if (change.excludes !== undefined) input.excludes = change.excludes.join('\n');
  if (change.preCommands !== undefined) {
    // An explicit timeout as `[Ns]`, the form's syntax; without one the form's default applies.
    input.preCommands = change.preCommands.map((c) => (c.timeoutSeconds === undefined ? c.command : `[${c.timeoutSeconds}s] ${c.command}`)).join('\n');
  }
  if (change.backupIntervalSeconds !== undefined) input.backupInterval = String(change.backupIntervalSeconds);
  if (change.retention !== undefined) {
    input.retentionOverride = change.retention === null ? '' : 'on';
    input.retentionVersions = change.retention === null ? '' : String(change.retention.versions);
    input.retentionDays = change.retention === null || change.retention.days === null ? '' : String(change.retention.days);
  }
  return input;
}

/**
 * Requires a live personal access token on every route of `app` (401
 * otherwise), and refuses anything but GET/HEAD with a read-only one (403).
 */
function requireApiToken(app: FastifyInstance, ctx: AppContext, now: () => Date): void {
  app.decorateRequest('apiToken', null);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new UnauthorizedError('missing bearer token');
    const token = await authenticateApiToken(ctx.database.db, match[1]!, now());
    if (!token) throw new UnauthorizedError('unknown, expired or revoked token');
    const readsOnly = request.routeOptions.config.readOnlyAllowed === true;
    if (token.readOnly && request.method !== 'GET' && request.method !== 'HEAD' && !readsOnly) throw new ForbiddenError('this token is read-only');
    request.apiToken = token;
  });
}

export const adminApiRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext; now?: () => Date }> = async (app, { ctx, now: clock }) => {
  const now = clock ?? (() => new Date());
  const db = ctx.database.db;
  const repo = createDashboardRepository(db);
  requireApiToken(app, ctx, now);
  // Registered after the hook, so it guards their routes too.
  await app.register(adminUsersApiRoutes, { ctx, now });
  await app.register(adminClientsApiRoutes, { ctx, now });
  const errors = ERRORS;

  const visibleClient = (request: FastifyRequest, id: string) => visibleClientOf(db, request, id);

  registerRestoreJobAdminRoutes(app, ctx, { viewerOf, actorOf, visibleClient, tags: TAGS, security: TOKEN_AUTH });

  app.get('/me', { schema: { tags: TAGS, summary: 'The token and the user it acts as', security: TOKEN_AUTH, response: { 200: Me, ...errors } } }, async (request) => {
    const token = tokenOf(request);
    return { user: token.user, token: { id: token.tokenId, name: token.tokenName, readOnly: token.readOnly } };
  });

  app.delete(
    '/me/token',
    {
      // Giving up one's own access changes nothing else, so a read-only token may too (what `cairn logout` calls).
      config: { readOnlyAllowed: true },
      schema: { tags: TAGS, summary: 'Revoke the token making this request (sign out a script or the CLI)', security: TOKEN_AUTH, response: { 200: TokenRevoked, ...errors } },
    },
    async (request) => {
      const token = tokenOf(request);
      await revokeApiToken(ctx, token.user.id, token.tokenId, actorOf(request), now());
      return { revoked: true as const, tokenId: token.tokenId };
    },
  );

  app.get(
    '/clients',
    { schema: { tags: TAGS, summary: "The user's clients (an admin's: every client)", security: TOKEN_AUTH, response: { 200: ClientList, ...errors } } },
    async (request) => {
      const user = viewerOf(request);
      return { clients: (await listClients(db, user.isAdmin ? {} : { ownerId: user.id })).map(clientJson) };
    },
  );

  app.get(
    '/clients/:id',
    { schema: { tags: TAGS, summary: 'One client with its configuration', security: TOKEN_AUTH, params: IdParams, response: { 200: AdminClientDetail, ...errors } } },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      return { ...clientJson(client), monitoredPaths: client.monitoredPaths, excludes: client.excludes, preCommands: client.preCommands };
    },
  );

  app.patch(
    '/clients/:id/config',
    {
      schema: {
        tags: TAGS,
        summary: "Change the client's central configuration (only the fields sent); the dashboard form's rules and messages",
        security: TOKEN_AUTH,
        params: IdParams,
        body: ClientConfigUpdate,
        response: { 200: AdminClientDetail, ...errors },
      },
    },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      const result = validateClientConfig(asFormInput(configFormValues(client), request.body));
      const rulesChange = request.body.retentionRules;
      const parsedRules = rulesChange === undefined || rulesChange === null ? { rules: rulesChange ?? null, errors: {} } : parseApiRetentionRules(rulesChange);
      const apiErrors = {
        ...(result.ok ? {} : Object.fromEntries(Object.entries(result.errors).map(([name, message]) => [API_FIELD[name] ?? name, message ?? 'invalid']))),
        ...parsedRules.errors,
      };
      if (!result.ok || Object.keys(apiErrors).length > 0) {
        throw new BadRequestError(Object.entries(apiErrors).map(([name, message]) => `${name}: ${message}`).join('; '), { fields: apiErrors });
      }
      const { retentionVersions, retentionDays, ...settings } = result.values;
      await updateClientSettings(
        ctx,
        client.id,
        { ...settings, retention: { versions: retentionVersions, days: retentionDays }, ...(rulesChange !== undefined && { retentionRules: parsedRules.rules }) },
        actorOf(request),
      );
      const updated = (await findClient(db, client.id))!;
      return { ...clientJson(updated), monitoredPaths: updated.monitoredPaths, excludes: updated.excludes, preCommands: updated.preCommands };
    },
  );

  app.post(
    '/clients/:id/run',
    { schema: { tags: TAGS, summary: 'Back up now: a connected agent starts a run within seconds (live channel), any other at its next heartbeat', security: TOKEN_AUTH, params: IdParams, response: { 200: RunRequested, ...errors } } },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      await requestRun(ctx, client.id, actorOf(request));
      return { runRequested: true };
    },
  );

  app.get(
    '/clients/:id/runs',
    { schema: { tags: TAGS, summary: "The client's runs, newest first", security: TOKEN_AUTH, params: IdParams, querystring: RunsQuery, response: { 200: RunList, ...errors } } },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      return { runs: await listRuns(db, client.id, { limit: request.query.limit ?? 50 }) };
    },
  );

  app.get(
    '/clients/:id/files',
    {
      schema: {
        tags: TAGS,
        summary: "The client's tree as of `asOf` (default now), by path, paged with `after`",
        security: TOKEN_AUTH,
        params: IdParams,
        querystring: FilesQuery,
        response: { 200: FilesPage, ...errors },
      },
    },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      const { asOf, prefix, after, limit } = request.query;
      return listTreeAsOf(db, client.id, {
        ...(asOf !== undefined && { asOf: new Date(asOf) }),
        ...(prefix !== undefined && { prefix }),
        ...(after !== undefined && { after }),
        ...(limit !== undefined && { limit }),
      });
    },
  );

  app.get(
    '/clients/:id/versions',
    {
      schema: {
        tags: TAGS,
        summary: 'Every retained version of one path of the client, newest first',
        security: TOKEN_AUTH,
        params: IdParams,
        querystring: VersionsQuery,
        response: { 200: VersionsResponse, ...errors },
      },
    },
    async (request) => {
      const client = await visibleClient(request, request.params.id);
      return { versions: await listPathVersions(db, client.id, request.query.path) };
    },
  );

  app.post(
    '/clients/:id/download-links',
    {
      // Making a link reads; it changes no data, so a read-only token may (decision 137).
      config: { readOnlyAllowed: true },
      schema: {
        tags: TAGS,
        summary:
          'Make a temporary download URL (default 1 hour, at most 7 days) for one version (`versionId`), the file at `path` as of `asOf`, or the tree under `folder` as of `asOf` (.tar.gz); it works without a session',
        security: TOKEN_AUTH,
        params: IdParams,
        body: NewDownloadLink,
        response: { 201: DownloadLink, ...errors },
      },
    },
    async (request, reply) => {
      const client = await visibleClient(request, request.params.id);
      const { versionId, path: filePath, folder, asOf: asOfText, expiresInSeconds = DOWNLOAD_LINK_DEFAULT_SECONDS } = request.body;
      const expiry = expiryError(expiresInSeconds);
      if (expiry) throw new BadRequestError(`expiresInSeconds: ${expiry}`, { fields: { expiresInSeconds: expiry } });
      const given = [versionId, filePath, folder].filter((v) => v !== undefined).length;
      if (given !== 1) {
        const message = 'exactly one of versionId, path or folder';
        throw new BadRequestError(`versionId: ${message}`, { fields: { versionId: message, path: message, folder: message } });
      }
      const asOf = asOfText === undefined ? now() : new Date(asOfText);
      let target: DownloadTarget;
      if (folder !== undefined) {
        target = { kind: 'archive', path: folder, asOf };
      } else if (versionId !== undefined) {
        const version = await repo.findVersion(client.id, Number(versionId));
        if (!version || version.kind !== 'file' || !version.contentSha256) throw new NotFoundError('no such file version');
        target = { kind: 'version', versionId: version.id, path: version.path };
      } else {
        const t = asOf.getTime();
        const version = (await listPathVersions(db, client.id, filePath!)).find(
          (v) => new Date(v.validFrom).getTime() <= t && (v.validTo === null || new Date(v.validTo).getTime() > t),
        );
        if (!version) throw new NotFoundError(`no version of ${filePath} as of ${asOf.toISOString()}`);
        if (version.kind !== 'file') throw new BadRequestError(`path: a ${version.kind}, not a file; use folder for an archive`, { fields: { path: 'not a file' } });
        target = { kind: 'version', versionId: Number(version.versionId), path: version.path };
      }
      const token = tokenOf(request);
      const link = await createDownloadLink(
        ctx,
        { userId: token.user.id, apiToken: { id: token.tokenId, expiresAt: token.expiresAt }, clientId: client.id, target, expiresInSeconds },
        actorOf(request),
        now(),
      );
      return reply.status(201).send({
        id: link.id,
        url: downloadLinkUrl(ctx.config, `${request.protocol}://${request.host}`, link.path),
        kind: target.kind,
        path: target.path,
        versionId: target.kind === 'version' ? String(target.versionId) : null,
        asOf: target.kind === 'archive' ? target.asOf.toISOString() : null,
        expiresAt: link.expiresAt.toISOString(),
      });
    },
  );

  app.get('/users', { schema: { tags: TAGS, summary: 'Every user (administrators only)', security: TOKEN_AUTH, response: { 200: UserList, ...errors } } }, async (request) => {
    if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can list users');
    return { users: (await listUsers(db)).map(userJson) };
  });

  app.get(
    '/users/:id',
    { schema: { tags: TAGS, summary: 'One user (administrators: anyone; others: themselves)', security: TOKEN_AUTH, params: IdParams, response: { 200: AdminUser, ...errors } } },
    async (request) => {
      const viewer = viewerOf(request);
      if (!viewer.isAdmin && viewer.id !== request.params.id) throw new ForbiddenError('you can only read your own user');
      const user = await findUser(db, request.params.id);
      if (!user) throw new NotFoundError('no such user');
      return userJson(user);
    },
  );

  app.get(
    '/alerts',
    { schema: { tags: TAGS, summary: 'Alerts of the user’s clients (an admin’s: all), newest first', security: TOKEN_AUTH, querystring: AlertsQuery, response: { 200: AlertList, ...errors } } },
    async (request) => {
      const viewer = viewerOf(request);
      const { type, clientId, limit = 300 } = request.query;
      const state = (request.query.state ?? 'unresolved') as (typeof ALERT_STATES)[number];
      if (clientId !== undefined) await visibleClient(request, clientId);
      const rows = await repo.listAlerts(viewer, { state: state === 'all' ? undefined : state, type: type as AlertType | undefined, clientId, limit });
      return {
        alerts: rows.map((a) => ({
          id: a.id,
          type: a.type,
          severity: a.severity,
          clientId: a.clientId,
          clientName: a.clientName,
          path: a.path,
          message: a.message,
          state: a.state,
          openedAt: a.openedAt.toISOString(),
          acknowledgedAt: iso(a.acknowledgedAt),
          acknowledgedBy: a.acknowledgedByName,
          resolvedAt: iso(a.resolvedAt),
        })),
      };
    },
  );

  app.post(
    '/alerts/:id/acknowledge',
    {
      schema: { tags: TAGS, summary: 'Acknowledge an open alert (409 when it is not open)', security: TOKEN_AUTH, params: IdParams, response: { 200: Acknowledged, ...errors, 409: AdminError } },
    },
    async (request) => {
      const alert = await repo.getAlert(viewerOf(request), request.params.id);
      if (!(await acknowledgeAlert(db, alert.id, actorOf(request), now()))) {
        throw new ConflictError(`this alert is already ${alert.state === 'open' ? 'acknowledged or resolved' : alert.state}`);
      }
      return { ok: true };
    },
  );

  app.get(
    '/verify-runs',
    {
      schema: {
        tags: TAGS,
        summary: 'Verify runs, newest first, and the chunks damaged now with the clients, paths and versions they affect (administrators only)',
        security: TOKEN_AUTH,
        response: { 200: VerifyReport, ...errors },
      },
    },
    async (request) => {
      if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can read verify runs');
      const [runs, damaged] = await Promise.all([listVerifyRuns(ctx), listDamage(ctx)]);
      return {
        runs: runs.map((r) => ({ ...r, startedAt: r.startedAt.toISOString(), finishedAt: iso(r.finishedAt) })),
        damaged: damaged.map((d) => ({
          sha256: d.sha256,
          damagedAt: d.damagedAt.toISOString(),
          problem: d.problem,
          affected: d.affected.map((a) => ({ ...a, validFrom: a.validFrom.toISOString(), validTo: iso(a.validTo) })),
        })),
      };
    },
  );

  app.post(
    '/verify-runs',
    {
      schema: {
        tags: TAGS,
        summary: 'Start a verify run that reads every pack (administrators only; 409 while one runs)',
        security: TOKEN_AUTH,
        response: { 202: VerifyStarted, ...errors, 409: AdminError },
      },
    },
    async (request, reply) => {
      if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can start a verify run');
      if (!(await startVerifyRun(ctx))) throw new ConflictError('a verify run is already running');
      return reply.code(202).send({ started: true });
    },
  );

  app.get(
    '/replica',
    {
      schema: {
        tags: TAGS,
        summary: "The replica store's lag: packs and bytes not yet copied, the oldest of them, and what it holds (administrators only)",
        security: TOKEN_AUTH,
        response: { 200: ReplicaReport, ...errors },
      },
    },
    async (request) => {
      if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can read the replica status');
      const status = await replicaStatus(ctx);
      return {
        ...status,
        oldestPendingAt: iso(status.oldestPendingAt),
        lastCopiedAt: iso(status.lastCopiedAt),
        lagAlertSeconds: ctx.config.alerts.replicaLagSeconds,
      };
    },
  );

  app.post(
    '/replica/export',
    {
      schema: {
        tags: TAGS,
        summary: 'Write a metadata export to the replica store now, for rebuilding a server from the replica alone (administrators only; 409 without a replica or while one runs)',
        security: TOKEN_AUTH,
        response: { 200: MetadataExportReport, ...errors, 409: AdminError },
      },
    },
    async (request) => {
      if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can export the metadata');
      if (!ctx.exports) throw new ConflictError('no replica store is configured (REPLICA_DIR or REPLICA_S3_BUCKET): there is nowhere to export to');
      const result = await runMetadataExport(ctx);
      if (!result.ran) throw new ConflictError('a metadata export is already running');
      return result;
    },
  );

  app.get(
    '/servers',
    {
      schema: {
        tags: TAGS,
        summary: 'The server replicas: state (running, lost, stopped), last heartbeat and the periodic jobs each runs now (administrators only)',
        security: TOKEN_AUTH,
        response: { 200: ServerList, ...errors },
      },
    },
    async (request) => {
      if (!viewerOf(request).isAdmin) throw new ForbiddenError('only administrators can list the servers');
      const servers = await listServers(ctx);
      return {
        servers: servers.map((s) => ({ ...s, startedAt: s.startedAt.toISOString(), heartbeatAt: s.heartbeatAt.toISOString(), stoppedAt: iso(s.stoppedAt) })),
      };
    },
  );
};
