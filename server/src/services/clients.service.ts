import { and, asc, eq, exists, sql } from 'drizzle-orm';
import {
  cronProblem,
  isKnownTimeZone,
  nextRunAt,
  scheduleGaps,
  windowMinutes,
  type BackupSchedule,
  type ClientConfig,
  type LocalConfigReport,
  type PingRequest,
  type PingResponse,
  type PreCommand,
  type RegisterRequest,
  type RegisterResponse,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import type { ServerConfig } from '../config/server-config.ts';
import { hashAgentToken, newAgentToken } from '../auth/tokens.ts';
import { numberOf, PG_UNIQUE_VIOLATION, pgErrorCode, rowsOf, type Db } from '../db/database.ts';
import { clientPaths, clients, fileVersions, ownerContents, restoreJobs, users } from '../db/schema.ts';
import { BadRequestError, ConflictError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { notifyAgent } from '../live/live-hub.ts';
import { recordAudit } from './audit-log.service.ts';
import { assertRetention, verifyUserCredentials, type Actor } from './users.service.ts';
import type { StoredRetentionRules } from './retention-rules.ts';

/** The agent behind a bearer token. */
export interface AgentIdentity {
  clientId: string;
  clientName: string;
  userId: string;
  username: string;
}

/** One message for unknown users, wrong passwords and disabled users alike. */
export const BAD_CREDENTIALS_MESSAGE = 'invalid username or password';

/** Where a person sees a client in the dashboard. */
export function clientDashboardUrl(config: ServerConfig, clientId: string): string {
  return `${config.publicUrl.replace(/\/+$/, '')}/clients/${clientId}`;
}

/**
 * Agent registration: checks the user's credentials (UnauthorizedError with
 * BAD_CREDENTIALS_MESSAGE otherwise) and returns a new token for the client
 * named `clientName`. An existing client of that name gets a fresh token and
 * the old one stops working (docs/decisions.md #4); otherwise a client is
 * created. Only the token's SHA-256 is stored.
 */
export async function registerClient(ctx: AppContext, request: RegisterRequest): Promise<RegisterResponse> {
  const user = await verifyUserCredentials(ctx.database.db, request.username, request.password);
  if (!user) throw new UnauthorizedError(BAD_CREDENTIALS_MESSAGE);
  const name = request.clientName.trim();
  if (name === '') throw new BadRequestError('clientName must not be blank');
  const token = newAgentToken();
  const clientId = await ctx.database.db.transaction(async (tx) => {
    // One statement for both cases, so two registrations racing for one name cannot create twins.
    const [row] = await tx
      .insert(clients)
      .values({
        ownerId: user.id,
        name,
        hostname: request.hostname,
        tokenHash: token.hash,
        tokenPrefix: token.prefix,
        agentVersion: request.agentVersion ?? null,
      })
      .onConflictDoUpdate({
        target: [clients.ownerId, clients.name],
        set: {
          hostname: request.hostname,
          tokenHash: token.hash,
          tokenPrefix: token.prefix,
          agentVersion: sql`coalesce(excluded.agent_version, ${clients.agentVersion})`,
        },
      })
      .returning({ id: clients.id, createdAt: clients.createdAt });
    if (!row) throw new Error('upsert returned no row');
    await recordAudit(tx, {
      actorUserId: user.id,
      actorName: user.username,
      action: 'client.register',
      targetType: 'client',
      targetId: row.id,
      details: { name, hostname: request.hostname, tokenPrefix: token.prefix },
    });
    return row.id;
  });
  return { clientId, token: token.token, dashboardUrl: clientDashboardUrl(ctx.config, clientId) };
}

/**
 * Creates a client by hand (dashboard) for `ownerId`, with a token to paste
 * into the agent. The token is returned once and never stored. ConflictError
 * when the owner already has a client of that name.
 */
export async function createClient(
  ctx: AppContext,
  ownerId: string,
  input: { name: string; hostname?: string },
  actor: Actor,
): Promise<{ clientId: string; token: string }> {
  const name = input.name.trim();
  if (name === '' || name.length > 200) throw new BadRequestError('client name must be 1-200 characters');
  const token = newAgentToken();
  try {
    const clientId = await ctx.database.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(clients)
        .values({ ownerId, name, hostname: input.hostname ?? '', tokenHash: token.hash, tokenPrefix: token.prefix })
        .returning({ id: clients.id });
      if (!row) throw new Error('insert returned no row');
      await recordAudit(tx, {
        actorUserId: actor.userId,
        actorName: actor.name,
        action: 'client.create',
        targetType: 'client',
        targetId: row.id,
        details: { name, ownerId, tokenPrefix: token.prefix },
      });
      return row.id;
    });
    return { clientId, token: token.token };
  } catch (error) {
    if (pgErrorCode(error) === PG_UNIQUE_VIOLATION) throw new ConflictError(`a client named "${name}" already exists`);
    throw error;
  }
}

/** Issues a new token for the client; the old one stops working at once. Returns the token (shown once). */
export async function rotateClientToken(ctx: AppContext, clientId: string, actor: Actor): Promise<{ token: string }> {
  const token = newAgentToken();
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(clients)
      .set({ tokenHash: token.hash, tokenPrefix: token.prefix })
      .where(eq(clients.id, clientId))
      .returning({ id: clients.id });
    if (updated.length === 0) throw new NotFoundError('no such client');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'client.token.rotate',
      targetType: 'client',
      targetId: clientId,
      details: { tokenPrefix: token.prefix },
    });
    // The old token's stream closes; the agent reconnects (and is refused) with it.
    await notifyAgent(tx, clientId, 'revoked');
  });
  return { token: token.token };
}

/** Revokes the client's token: every agent request with it is 401 until a new one is issued or the agent re-registers. */
export async function revokeClientToken(ctx: AppContext, clientId: string, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(clients)
      .set({ tokenHash: null, tokenPrefix: null })
      .where(eq(clients.id, clientId))
      .returning({ id: clients.id });
    if (updated.length === 0) throw new NotFoundError('no such client');
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'client.token.revoke', targetType: 'client', targetId: clientId });
    await notifyAgent(tx, clientId, 'revoked');
  });
}

/**
 * Gives the client to another user (decision 105). The new owner is made to
 * hold every content the client's versions reference (owner_contents rows,
 * added in the same transaction), so its files stay downloadable and its
 * next backup deduplicates against them; the old owner keeps their rows (they
 * did upload or prove those bytes). The agent's token keeps working: it names
 * the client, not the owner. ConflictError when the new owner already has a
 * client of that name; NotFoundError for an unknown client or user.
 */
export async function moveClient(ctx: AppContext, clientId: string, newOwnerId: string, actor: Actor): Promise<{ contentsGranted: number }> {
  try {
    return await ctx.database.db.transaction(async (tx) => {
      const [client] = await tx.select({ ownerId: clients.ownerId, name: clients.name }).from(clients).where(eq(clients.id, clientId)).for('update');
      if (!client) throw new NotFoundError('no such client');
      const [owner] = await tx.select({ id: users.id, username: users.username }).from(users).where(eq(users.id, newOwnerId));
      if (!owner) throw new NotFoundError('ownerId: no such user');
      if (client.ownerId === newOwnerId) return { contentsGranted: 0 };
      await tx.update(clients).set({ ownerId: newOwnerId }).where(eq(clients.id, clientId));
      const granted = await tx.execute(sql`
        insert into ${ownerContents} (content_sha256, user_id)
        select distinct fv.content_sha256, ${newOwnerId}::uuid from ${fileVersions} fv
        join ${clientPaths} p on p.id = fv.path_id
        where p.client_id = ${clientId} and fv.content_sha256 is not null
        on conflict do nothing
        returning content_sha256`);
      const contentsGranted = rowsOf(granted).length;
      await recordAudit(tx, {
        actorUserId: actor.userId,
        actorName: actor.name,
        action: 'client.move',
        targetType: 'client',
        targetId: clientId,
        details: { name: client.name, fromUserId: client.ownerId, toUserId: newOwnerId, toUsername: owner.username, contentsGranted },
      });
      return { contentsGranted };
    });
  } catch (error) {
    if (pgErrorCode(error) === PG_UNIQUE_VIOLATION) throw new ConflictError('ownerId: that user already has a client with this name');
    throw error;
  }
}

/** The agent a bearer token belongs to, or null for an unknown or revoked token or a disabled owner. */
export async function authenticateAgentToken(db: Db, token: string): Promise<AgentIdentity | null> {
  const [row] = await db
    .select({ clientId: clients.id, clientName: clients.name, userId: users.id, username: users.username })
    .from(clients)
    .innerJoin(users, eq(users.id, clients.ownerId))
    .where(and(eq(clients.tokenHash, hashAgentToken(token)), eq(users.disabled, false)))
    .limit(1);
  return row ?? null;
}

/** The schedule columns of a client row. */
export interface ScheduleColumns {
  backupIntervalSeconds: number;
  scheduleCron: string | null;
  scheduleTimeZone: string;
  backupWindowStart: string | null;
  backupWindowEnd: string | null;
}

/** The schedule columns of a raw (snake_case) row, as raw SQL selects them. */
export function scheduleColumnsOfRaw(row: Record<string, unknown>): ScheduleColumns {
  return {
    backupIntervalSeconds: numberOf(row.backup_interval_seconds),
    scheduleCron: (row.schedule_cron ?? null) as string | null,
    scheduleTimeZone: String(row.schedule_time_zone ?? 'UTC'),
    backupWindowStart: (row.backup_window_start ?? null) as string | null,
    backupWindowEnd: (row.backup_window_end ?? null) as string | null,
  };
}

/** A client's backup schedule as the agent, the dashboard and the alert engine read it. */
export function scheduleOf(row: ScheduleColumns): BackupSchedule {
  return {
    intervalSeconds: row.backupIntervalSeconds,
    cron: row.scheduleCron,
    timeZone: row.scheduleTimeZone,
    window: row.backupWindowStart !== null && row.backupWindowEnd !== null ? { start: row.backupWindowStart, end: row.backupWindowEnd } : null,
  };
}

/**
 * The gaps between backups the schedule means: the interval, or for a cron
 * expression or a window the longest and the mean gap between two runs in
 * the coming week (a weekday cron: Friday to Monday is the longest). The
 * missed-backup alert and the dashboard's "late" measure against the
 * longest; counts of runs (extra-backup) against the mean.
 */
export function expectedBackupGaps(row: ScheduleColumns, now: Date): { longestSeconds: number; meanSeconds: number } {
  return scheduleGaps(scheduleOf(row), now) ?? { longestSeconds: row.backupIntervalSeconds, meanSeconds: row.backupIntervalSeconds };
}

/**
 * Checks a schedule; BadRequestError naming the field (`cron`, `timeZone`,
 * `backupWindow`). A cron expression with no time inside its window is
 * refused too: it would never run.
 */
export function assertBackupSchedule(schedule: BackupSchedule, now: Date): void {
  if (!(Number.isInteger(schedule.intervalSeconds) && schedule.intervalSeconds >= 60)) throw new BadRequestError('backup interval must be at least 60 seconds', {}, { field: 'intervalSeconds' });
  if (!isKnownTimeZone(schedule.timeZone)) throw BadRequestError.inField('timeZone', `unknown time zone "${schedule.timeZone}" (use an IANA name such as Europe/Berlin)`);
  if (schedule.cron !== null) {
    const problem = cronProblem(schedule.cron);
    if (problem !== null) throw BadRequestError.inField('cron', problem);
  }
  if (schedule.window !== null) {
    const start = windowMinutes(schedule.window.start);
    const end = windowMinutes(schedule.window.end);
    if (start === null || end === null) throw BadRequestError.inField('backupWindow', 'start and end are times of day, HH:MM');
    if (start === end) throw BadRequestError.inField('backupWindow', 'start and end must differ');
  }
  if (nextRunAt(schedule, null, now) === null) throw BadRequestError.inField('backupWindow', 'no time of the cron expression falls inside the window');
}

/**
 * The fields of a local configuration report the server keeps, picked one by
 * one: the schema lets unknown properties through (a newer agent's report
 * must not fail its ping), and nothing the protocol does not name is stored.
 */
function localConfigToStore(report: LocalConfigReport): LocalConfigReport {
  return {
    monitoredPaths: report.monitoredPaths,
    excludes: report.excludes,
    preCommands: report.preCommands.map((pre) => ({ command: pre.command, timeoutSeconds: pre.timeoutSeconds })),
    allowRemoteCommands: report.allowRemoteCommands,
    remoteCommandAllowlist: report.remoteCommandAllowlist,
    backupIntervalSeconds: report.backupIntervalSeconds,
    ...(report.truncated === true && { truncated: true }),
  };
}

/**
 * Records a heartbeat (server clock) and the agent's local configuration, and
 * tells the agent whether a person asked for a run and whether a restore job
 * waits for it: one statement, so a ping is one round trip.
 */
export async function recordPing(db: Db, clientId: string, ping: PingRequest): Promise<PingResponse> {
  const [row] = await db
    .update(clients)
    .set({
      lastPingAt: sql`now()`,
      ...(ping.agentVersion !== undefined && { agentVersion: ping.agentVersion }),
      ...(ping.hostname !== undefined && { hostname: ping.hostname }),
      ...(ping.state !== undefined && { agentState: ping.state }),
      // Older agents send none: what an earlier one reported stays, with its time (decision 157).
      ...(ping.localConfig !== undefined && { localConfig: localConfigToStore(ping.localConfig), localConfigAt: sql`now()` }),
    })
    .where(eq(clients.id, clientId))
    .returning({
      runRequestedAt: clients.runRequestedAt,
      backupIntervalSeconds: clients.backupIntervalSeconds,
      scheduleCron: clients.scheduleCron,
      scheduleTimeZone: clients.scheduleTimeZone,
      backupWindowStart: clients.backupWindowStart,
      backupWindowEnd: clients.backupWindowEnd,
      restoreJobsPending: sql<boolean>`${exists(
        db
          .select({ one: sql`1` })
          .from(restoreJobs)
          .where(and(eq(restoreJobs.targetClientId, clients.id), eq(restoreJobs.status, 'queued'))),
      )}`,
    });
  if (!row) throw new NotFoundError('no such client');
  return {
    serverTime: new Date().toISOString(),
    runRequested: row.runRequestedAt !== null,
    schedule: scheduleOf(row),
    restoreJobsPending: row.restoreJobsPending,
  };
}

/** Asks the client's agent to back up now; it learns at its next ping and the flag clears when it starts a run. */
export async function requestRun(ctx: AppContext, clientId: string, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(clients)
      .set({ runRequestedAt: sql`coalesce(${clients.runRequestedAt}, now())` })
      .where(eq(clients.id, clientId))
      .returning({ id: clients.id });
    if (updated.length === 0) throw new NotFoundError('no such client');
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'client.run.request', targetType: 'client', targetId: clientId });
    await notifyAgent(tx, clientId, 'run');
  });
}

/** The central configuration an agent fetches with GET /config. */
export async function getClientConfig(ctx: AppContext, clientId: string): Promise<ClientConfig> {
  const [row] = await ctx.database.db.select().from(clients).where(eq(clients.id, clientId)).limit(1);
  if (!row) throw new NotFoundError('no such client');
  return {
    clientId: row.id,
    name: row.name,
    monitoredPaths: row.monitoredPaths,
    excludes: row.excludes,
    preCommands: row.preCommands,
    backupIntervalSeconds: row.backupIntervalSeconds,
    schedule: scheduleOf(row),
    pingIntervalSeconds: row.pingIntervalSeconds,
    dashboardUrl: clientDashboardUrl(ctx.config, row.id),
  };
}

export interface ClientSettings {
  monitoredPaths?: string[];
  excludes?: string[];
  preCommands?: PreCommand[];
  backupIntervalSeconds?: number;
  /** Cron (null = the interval), its zone and the window; checked with assertBackupSchedule. */
  schedule?: { cron: string | null; timeZone: string; window: { start: string; end: string } | null };
  pingIntervalSeconds?: number;
  /** Both null: use the owner's policy. versions set: this client's own policy (days null = no age limit). */
  retention?: { versions: number | null; days: number | null };
  /** Folder and restore-point rules of this client's own; null: the owner's (decision 134). */
  retentionRules?: StoredRetentionRules | null;
}

/**
 * Changes a client's central configuration. Every change is written to the
 * audit log with the values before and after (pre-commands included: they run
 * on the agent's machine). Throws NotFoundError / BadRequestError.
 */
export async function updateClientSettings(ctx: AppContext, clientId: string, settings: ClientSettings, actor: Actor): Promise<void> {
  if (settings.backupIntervalSeconds !== undefined && !(Number.isInteger(settings.backupIntervalSeconds) && settings.backupIntervalSeconds >= 60)) {
    throw new BadRequestError('backup interval must be at least 60 seconds');
  }
  if (settings.pingIntervalSeconds !== undefined && !(Number.isInteger(settings.pingIntervalSeconds) && settings.pingIntervalSeconds >= 5)) {
    throw new BadRequestError('ping interval must be at least 5 seconds');
  }
  for (const command of settings.preCommands ?? []) {
    if (command.command.trim() === '' || command.command.length > 4096) throw new BadRequestError('pre-command must be 1-4096 characters');
    if (!Number.isInteger(command.timeoutSeconds) || command.timeoutSeconds < 1 || command.timeoutSeconds > 86_400) {
      throw new BadRequestError('pre-command timeout must be 1-86400 seconds');
    }
  }
  if (settings.retention && settings.retention.versions !== null) {
    assertRetention({ versions: settings.retention.versions, days: settings.retention.days });
  }
  await ctx.database.db.transaction(async (tx) => {
    const [before] = await tx.select().from(clients).where(eq(clients.id, clientId)).for('update').limit(1);
    if (!before) throw new NotFoundError('no such client');
    if (settings.schedule !== undefined || settings.backupIntervalSeconds !== undefined) {
      const current = scheduleOf(before);
      assertBackupSchedule({ ...current, ...settings.schedule, intervalSeconds: settings.backupIntervalSeconds ?? current.intervalSeconds }, new Date());
    }
    const set = {
      ...(settings.monitoredPaths !== undefined && { monitoredPaths: settings.monitoredPaths }),
      ...(settings.excludes !== undefined && { excludes: settings.excludes }),
      ...(settings.preCommands !== undefined && { preCommands: settings.preCommands }),
      ...(settings.backupIntervalSeconds !== undefined && { backupIntervalSeconds: settings.backupIntervalSeconds }),
      ...(settings.schedule !== undefined && {
        scheduleCron: settings.schedule.cron,
        scheduleTimeZone: settings.schedule.timeZone,
        backupWindowStart: settings.schedule.window?.start ?? null,
        backupWindowEnd: settings.schedule.window?.end ?? null,
      }),
      ...(settings.pingIntervalSeconds !== undefined && { pingIntervalSeconds: settings.pingIntervalSeconds }),
      ...(settings.retention !== undefined && {
        retentionVersions: settings.retention.versions,
        retentionDays: settings.retention.versions === null ? null : settings.retention.days,
      }),
      ...(settings.retentionRules !== undefined && { retentionRules: settings.retentionRules }),
    };
    if (Object.keys(set).length === 0) return;
    await tx.update(clients).set(set).where(eq(clients.id, clientId));
    const changes: Record<string, { before: unknown; after: unknown }> = {};
    for (const [field, after] of Object.entries(set)) {
      const previous = (before as Record<string, unknown>)[field];
      if (JSON.stringify(previous) !== JSON.stringify(after)) changes[field] = { before: previous, after };
    }
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'preCommands' in changes ? 'client.precommands.update' : 'client.settings.update',
      targetType: 'client',
      targetId: clientId,
      details: changes,
    });
    if (Object.keys(changes).length > 0) await notifyAgent(tx, clientId, 'config');
  });
}

export interface ClientSummary {
  id: string;
  ownerId: string;
  ownerUsername: string;
  name: string;
  hostname: string;
  tokenPrefix: string | null;
  agentVersion: string | null;
  agentState: string | null;
  lastPingAt: Date | null;
  lastBackupAt: Date | null;
  runRequestedAt: Date | null;
  backupIntervalSeconds: number;
  scheduleCron: string | null;
  scheduleTimeZone: string;
  backupWindowStart: string | null;
  backupWindowEnd: string | null;
  pingIntervalSeconds: number;
  retentionVersions: number | null;
  retentionDays: number | null;
  retentionRules: StoredRetentionRules | null;
  createdAt: Date;
}

const clientSummaryColumns = {
  id: clients.id,
  ownerId: clients.ownerId,
  ownerUsername: users.username,
  name: clients.name,
  hostname: clients.hostname,
  tokenPrefix: clients.tokenPrefix,
  agentVersion: clients.agentVersion,
  agentState: clients.agentState,
  lastPingAt: clients.lastPingAt,
  lastBackupAt: clients.lastBackupAt,
  runRequestedAt: clients.runRequestedAt,
  backupIntervalSeconds: clients.backupIntervalSeconds,
  scheduleCron: clients.scheduleCron,
  scheduleTimeZone: clients.scheduleTimeZone,
  backupWindowStart: clients.backupWindowStart,
  backupWindowEnd: clients.backupWindowEnd,
  pingIntervalSeconds: clients.pingIntervalSeconds,
  retentionVersions: clients.retentionVersions,
  retentionDays: clients.retentionDays,
  retentionRules: clients.retentionRules,
  createdAt: clients.createdAt,
};

/** Clients by owner and name; only `ownerId`'s when given (a non-admin sees only their own). */
export async function listClients(db: Db, filter: { ownerId?: string } = {}): Promise<ClientSummary[]> {
  return db
    .select(clientSummaryColumns)
    .from(clients)
    .innerJoin(users, eq(users.id, clients.ownerId))
    .where(filter.ownerId === undefined ? undefined : eq(clients.ownerId, filter.ownerId))
    .orderBy(asc(users.username), asc(clients.name));
}

/** One client with its full settings, or null. Callers check `ownerId` before showing it to a non-admin. */
export async function findClient(db: Db, clientId: string): Promise<(ClientSummary & { monitoredPaths: string[]; excludes: string[]; preCommands: PreCommand[] }) | null> {
  const [row] = await db
    .select({ ...clientSummaryColumns, monitoredPaths: clients.monitoredPaths, excludes: clients.excludes, preCommands: clients.preCommands })
    .from(clients)
    .innerJoin(users, eq(users.id, clients.ownerId))
    .where(eq(clients.id, clientId))
    .limit(1);
  return row ?? null;
}
