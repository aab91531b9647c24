/**
 * The metadata schema (PostgreSQL: DATABASE_URL's server or the embedded
 * one); migrations under `server/drizzle/` are generated from it
 * with `npm run db:generate` and applied at start-up.
 *
 * Byte counts and millisecond times use bigint in number mode: exact up to
 * 2^53, far beyond any file or store size we handle.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  customType,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { FileKind, LocalConfigReport, PreCommand, PreCommandResult, RestoreJobFailure, RestoreJobProgress, RestoreJobStatus } from '@cairn/shared';
import type { AlertSeverity, AlertType } from '../alerts/alert-event.ts';
import type { AlertSettingsOverride } from '../alerts/alert-settings.ts';
import type { StoredRetentionRules } from '../services/retention-rules.ts';

/**
 * A SHA-256 stored as its 32 bytes (bytea), read and written as 64 lower-case
 * hex digits: half the size of hex text in every row and index that holds
 * one (decision 90). Raw SQL compares with `decode(<hex>, 'hex')` and reads
 * with `encode(<column>, 'hex')`.
 */
export const sha256Column = customType<{ data: string; driverData: Buffer }>({
  dataType: () => 'bytea',
  toDriver: (hex) => Buffer.from(hex, 'hex'),
  fromDriver: (bytes) => Buffer.from(bytes).toString('hex'),
});

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  username: text('username').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  isAdmin: boolean('is_admin').notNull().default(false),
  disabled: boolean('disabled').notNull().default(false),
  /** Keep at most this many versions of each path (the current one always kept). */
  retentionVersions: integer('retention_versions').notNull().default(30),
  /** Keep non-current versions at most this many days after they stopped being current; null = no age limit. */
  retentionDays: integer('retention_days'),
  /** Where this user's own alert emails go; null = none (admins still get everything via ALERT_EMAIL_TO). */
  alertEmail: text('alert_email'),
  /** The alert types emailed to alertEmail, for this user's clients only; empty = none. */
  alertEmailTypes: jsonb('alert_email_types').$type<AlertType[]>().notNull().default(sql`'[]'::jsonb`),
  ...userAlertWebhookColumns(),
  createdAt: createdAt(),
  // ---- retention rules (issue 14, decision 134) ----
  /** Folder rules and restore-point keep counts, beside retentionVersions/Days (services/retention-rules.ts). */
  retentionRules: jsonb('retention_rules')
    .$type<StoredRetentionRules>()
    .notNull()
    .default(sql`'{"folders":[],"restorePoints":{"last":0,"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0}}'::jsonb`),
});

export const clients = pgTable(
  'clients',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    hostname: text('hostname').notNull().default(''),
    /** SHA-256 of the bearer token; the token itself is shown once and never stored. */
    tokenHash: text('token_hash'),
    /** First characters of the token, to let a person recognise it. */
    tokenPrefix: text('token_prefix'),
    monitoredPaths: jsonb('monitored_paths').$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    excludes: jsonb('excludes').$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    preCommands: jsonb('pre_commands').$type<PreCommand[]>().notNull().default(sql`'[]'::jsonb`),
    backupIntervalSeconds: integer('backup_interval_seconds').notNull().default(3600),
    pingIntervalSeconds: integer('ping_interval_seconds').notNull().default(300),
    /** Per-client retention override; null = the owner's policy. */
    retentionVersions: integer('retention_versions'),
    retentionDays: integer('retention_days'),
    /** Alert settings this client overrides (only those); null = the defaults (server/src/alerts/alert-settings.ts). */
    alertSettings: jsonb('alert_settings').$type<AlertSettingsOverride>(),
    runRequestedAt: timestamp('run_requested_at', { withTimezone: true }),
    lastPingAt: timestamp('last_ping_at', { withTimezone: true }),
    lastBackupAt: timestamp('last_backup_at', { withTimezone: true }),
    agentVersion: text('agent_version'),
    agentState: text('agent_state'),
    createdAt: createdAt(),
    // ---- schedules (issue 13): cron and window; null cron = backupIntervalSeconds ----
    /** Five-field cron expression read in scheduleTimeZone; null = every backupIntervalSeconds. */
    scheduleCron: text('schedule_cron'),
    /** IANA zone of the cron expression and the window. */
    scheduleTimeZone: text('schedule_time_zone').notNull().default('UTC'),
    /** Daily window (`HH:MM`) in which runs may start; both null = any time. */
    backupWindowStart: text('backup_window_start'),
    backupWindowEnd: text('backup_window_end'),
    // ---- retention rules (issue 14, decision 134) ----
    /** This client's own folder rules and restore points; null = the owner's (independent of retentionVersions). */
    retentionRules: jsonb('retention_rules').$type<StoredRetentionRules>(),
    // ---- the agent's local configuration (issue 13, decision 157) ----
    /** What the agent last reported of its own paths, excludes and pre-commands (PingRequest.localConfig); null = never. */
    localConfig: jsonb('local_config').$type<LocalConfigReport>(),
    /** When that report arrived (server clock). */
    localConfigAt: timestamp('local_config_at', { withTimezone: true }),
    /** client_path_names holds this client's paths up to this id (decision 159). */
    searchIndexedPathId: bigint('search_indexed_path_id', { mode: 'number' }).notNull().default(0),
  },
  (t) => [uniqueIndex('clients_owner_name_uq').on(t.ownerId, t.name), uniqueIndex('clients_token_hash_uq').on(t.tokenHash)],
);

/**
 * Pack objects (`packs/<sha256>` in the blob store, format in
 * storage/pack-format.ts): many compressed chunks each, written with one put
 * and then recorded here, rows after objects (decision 127). `retired_at` is
 * set when GC or a repack has moved every live chunk out of the pack (or
 * none is left): the object is deleted once the grace period has passed
 * since, so a read that found its location before the switch still finds
 * the bytes.
 */
export const packs = pgTable('packs', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  sha256: sha256Column('sha256').notNull().unique(),
  /** The object's whole length (header, chunks, index, footer). */
  bytes: bigint('bytes', { mode: 'number' }).notNull(),
  chunkCount: integer('chunk_count').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  retiredAt: timestamp('retired_at', { withTimezone: true }),
  /** When the verify job last read this pack whole (null: never); it reads the least recently verified first. */
  verifiedAt: timestamp('verified_at', { withTimezone: true }),
});

/** One run of the verify job (decision 132): what it read, and what it found damaged (verify_findings). */
export const verifyRuns = pgTable('verify_runs', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  trigger: text('trigger').$type<'schedule' | 'manual'>().notNull(),
  /** `interrupted`: its server died mid-run (decision 151); a later run went on with the packs it had not read. */
  status: text('status').$type<'running' | 'succeeded' | 'failed' | 'interrupted'>().notNull().default('running'),
  /** The replica (servers.id) that ran it; no foreign key: old servers rows are pruned, the run stays. */
  serverId: uuid('server_id'),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  finishedAt: timestamp('finished_at', { withTimezone: true }),
  packsPlanned: integer('packs_planned').notNull().default(0),
  packsChecked: integer('packs_checked').notNull().default(0),
  objectsChecked: integer('objects_checked').notNull().default(0),
  chunksChecked: integer('chunks_checked').notNull().default(0),
  bytesRead: bigint('bytes_read', { mode: 'number' }).notNull().default(0),
  damagedChunks: integer('damaged_chunks').notNull().default(0),
  /** Damaged or missing packs it put back from the replica store's verified copy (decision 164). */
  packsRepaired: integer('packs_repaired').notNull().default(0),
  error: text('error'),
});

/** A damaged chunk a verify run found: where and why. */
export const verifyFindings = pgTable(
  'verify_findings',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    runId: integer('run_id')
      .notNull()
      .references(() => verifyRuns.id, { onDelete: 'cascade' }),
    chunkSha256: sha256Column('chunk_sha256').notNull(),
    /** The store key it was read from (a pack, or a v1 object). */
    objectKey: text('object_key').notNull(),
    problem: text('problem').notNull(),
  },
  (t) => [index('verify_findings_run_idx').on(t.runId)],
);

/**
 * Chunks, stored once for the whole server. A chunk in a pack has its
 * location (pack, offset, stored length, codec; `size` is its raw size); a
 * v1 chunk (pack_id null) is the whole-content object keyed by its hash in
 * hex. `damaged_at`: a read or the verify job found its bytes missing or
 * wrong; "which are missing?" then answers missing for it (and for every
 * content containing it), and the next upload of the bytes heals it.
 */
export const chunks = pgTable(
  'chunks',
  {
    sha256: sha256Column('sha256').primaryKey(),
    size: bigint('size', { mode: 'number' }).notNull(),
    /** Bumped whenever something asserts it still needs this chunk; GC spares recently touched rows. */
    touchedAt: timestamp('touched_at', { withTimezone: true }).notNull().defaultNow(),
    packId: integer('pack_id').references(() => packs.id),
    packOffset: bigint('pack_offset', { mode: 'number' }),
    storedLength: integer('stored_length'),
    /** storage/chunk-codec.ts CHUNK_CODECS: 0 raw, 1 zstd, 2 delta. */
    codec: smallint('codec'),
    /**
     * A delta chunk's base (decision 171): a chunk stored whole that this
     * one's bytes are a delta against. GC keeps a base while a chunk names it.
     */
    baseSha256: sha256Column('base_sha256'),
    damagedAt: timestamp('damaged_at', { withTimezone: true }),
  },
  (t) => [
    index('chunks_pack_idx').on(t.packId),
    // "Is this chunk still some delta's base?" (GC), for the few chunks that are.
    index('chunks_base_idx').on(t.baseSha256).where(sql`${t.baseSha256} is not null`),
    // Damage is rare: a partial index finds it without a scan (run start, the verify page).
    index('chunks_damaged_idx').on(t.damagedAt).where(sql`${t.damagedAt} is not null`),
    // v1 objects left to move into packs (decision 133): empty once they are moved.
    index('chunks_v1_idx').on(t.sha256).where(sql`${t.packId} is null`),
  ],
);

/**
 * Objects found in the blob store with no row that names them (an upload
 * that died between its put and its commit, a GC that died between rows and
 * objects), and when GC first saw each: it deletes one only when it is still
 * unnamed a grace period later, since an upload's pack has no row until its
 * commit (decision 131).
 */
export const orphanObjects = pgTable('orphan_objects', {
  key: text('key').primaryKey(),
  firstSeenAt: timestamp('first_seen_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * What the replica store holds (decision 161): one row per object copied
 * there, written before the copy starts (so nothing is ever on the replica
 * without a row that can have it deleted) and stamped `replicated_at` once
 * the copy was read back verified (its bytes hash to its name). Its own table,
 * not a column on `packs`, because a row must outlive the primary's: when
 * GC deletes a pack (or a v1 object) here, the replication job stamps
 * `primary_gone_at`, and deletes the replica's copy only
 * REPLICA_DELETE_GRACE_SECONDS after that.
 */
export const replicaObjects = pgTable(
  'replica_objects',
  {
    sha256: sha256Column('sha256').notNull(),
    /** `pack`: the object `packs/<sha256>`; `object`: a v1 whole-content object keyed by its hash. */
    kind: text('kind').$type<'pack' | 'object'>().notNull(),
    bytes: bigint('bytes', { mode: 'number' }).notNull(),
    /** When its copy was read back and found to hash to its name; null while a copy is under way (the row comes first). */
    replicatedAt: timestamp('replicated_at', { withTimezone: true }),
    /** When the last attempt to copy it failed (the primary's copy missing or damaged); retried after REPLICATION_RETRY_SECONDS. */
    failedAt: timestamp('failed_at', { withTimezone: true }),
    /** When a pass last found the copy still there (a few least recently checked per pass), so a replica emptied behind Cairn's back is refilled. */
    checkedAt: timestamp('checked_at', { withTimezone: true }).notNull().defaultNow(),
    /** When the job first found the primary's row gone (GC deleted it); null while the primary holds it. */
    primaryGoneAt: timestamp('primary_gone_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.kind] })],
);

/**
 * A content of more than one chunk: its whole-file hash, size and (in
 * content_chunks) its ordered chunks. A content of one chunk (every v1
 * content) is that chunk, same hash, and has no row here nor in
 * content_chunks: one row per content where the content is one chunk
 * (decision 91). So a hash that versions and owners name is a row here or
 * else a row of `chunks`, and no foreign key can say which.
 */
export const contents = pgTable('contents', {
  sha256: sha256Column('sha256').primaryKey(),
  size: bigint('size', { mode: 'number' }).notNull(),
  chunkCount: integer('chunk_count').notNull(),
  touchedAt: timestamp('touched_at', { withTimezone: true }).notNull().defaultNow(),
  /** Set with the damage of any of its chunks; cleared when every chunk is whole again (decision 128). */
  damagedAt: timestamp('damaged_at', { withTimezone: true }),
}, (t) => [index('contents_damaged_idx').on(t.damagedAt).where(sql`${t.damagedAt} is not null`)]);

/** The ordered chunks of a content of more than one chunk. */
export const contentChunks = pgTable(
  'content_chunks',
  {
    contentSha256: sha256Column('content_sha256')
      .notNull()
      .references(() => contents.sha256, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    chunkSha256: sha256Column('chunk_sha256')
      .notNull()
      .references(() => chunks.sha256),
    offset: bigint('offset', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.contentSha256, t.seq] }), index('content_chunks_chunk_idx').on(t.chunkSha256)],
);

/**
 * Contents a user has proven to hold by uploading the bytes once. Dedup
 * answers are scoped to this. Keyed content first: the per-user lookups name
 * both, and GC deletes a content's rows by its hash without another index.
 */
export const ownerContents = pgTable(
  'owner_contents',
  {
    /** A contents row's hash, else a chunk's (decision 91); GC deletes these rows with what they name. */
    contentSha256: sha256Column('content_sha256').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.contentSha256, t.userId] })],
);

export const backupRuns = pgTable(
  'backup_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    clientId: uuid('client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    trigger: text('trigger').notNull().default('schedule'),
    status: text('status').$type<'running' | 'succeeded' | 'partial' | 'failed'>().notNull().default('running'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    filesScanned: integer('files_scanned').notNull().default(0),
    filesChanged: integer('files_changed').notNull().default(0),
    filesDeleted: integer('files_deleted').notNull().default(0),
    filesFailed: integer('files_failed').notNull().default(0),
    bytesScanned: bigint('bytes_scanned', { mode: 'number' }).notNull().default(0),
    bytesUploaded: bigint('bytes_uploaded', { mode: 'number' }).notNull().default(0),
    /** Bytes of objects this run's uploads newly stored, counted by the server. */
    bytesNew: bigint('bytes_new', { mode: 'number' }).notNull().default(0),
    preCommands: jsonb('pre_commands').$type<PreCommandResult[]>().notNull().default(sql`'[]'::jsonb`),
    error: text('error'),
    // ---- compression sample (issue 12, mass change): how well this run's new bytes compress ----
    /** Bytes sampled from the parts this run newly stored (the first 16 KiB of each, decision 120). */
    sampleRawBytes: bigint('sample_raw_bytes', { mode: 'number' }).notNull().default(0),
    /** Those samples' size after deflate level 1; near sampleRawBytes means the new content does not compress. */
    sampleCompressedBytes: bigint('sample_compressed_bytes', { mode: 'number' }).notNull().default(0),
  },
  (t) => [index('backup_runs_client_started_idx').on(t.clientId, t.startedAt)],
);

/**
 * Every path a client ever backed up, stored once (decision 92): versions
 * refer to it by id, so a path's text is not repeated in each of its
 * versions and their indexes. Rows go with their client; a path whose
 * versions were all pruned stays (a few bytes, and a later version reuses it).
 */
export const clientPaths = pgTable(
  'client_paths',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    clientId: uuid('client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    path: text('path').notNull(),
    /**
     * When a run deleted the path (its current version was closed by a
     * delete); null while it exists or was never deleted. Set and cleared by
     * applyChanges, for the dashboard's deleted-files view (decision 160).
     */
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('client_paths_client_path_uq').on(t.clientId, t.path),
    // Deleted paths, newest deletion first: only those rows are in it.
    index('client_paths_deleted_idx').on(t.clientId, t.deletedAt, t.id).where(sql`${t.deletedAt} is not null`),
  ],
);

/**
 * Temporal file versions: a version is current while valid_to is null. The
 * tree as of T is every version with valid_from <= T < coalesce(valid_to, infinity).
 * Times are the server's clock. The client is the path's (client_paths).
 */
/**
 * The file names the dashboard's file search looks in (decision 159): one
 * row per client path, its last segment, with a trigram index (the
 * migration's `client_path_names_search_idx`, when pg_trgm and btree_gin can
 * be had). Filled lazily, by the first search after new paths arrived
 * (`clients.search_indexed_path_id` is how far), so a backup never pays for
 * the index: a GIN insert costs about as much again as the path's own row.
 */
export const clientPathNames = pgTable('client_path_names', {
  pathId: bigint('path_id', { mode: 'number' })
    .primaryKey()
    .references(() => clientPaths.id, { onDelete: 'cascade' }),
  clientId: uuid('client_id').notNull(),
  name: text('name').notNull(),
});

export const fileVersions = pgTable(
  'file_versions',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    pathId: bigint('path_id', { mode: 'number' })
      .notNull()
      .references(() => clientPaths.id, { onDelete: 'cascade' }),
    kind: text('kind').$type<FileKind>().notNull().default('file'),
    /** A contents row's hash, else a chunk's (decision 91). */
    contentSha256: sha256Column('content_sha256'),
    size: bigint('size', { mode: 'number' }).notNull(),
    mtimeMs: bigint('mtime_ms', { mode: 'number' }).notNull(),
    mode: integer('mode').notNull(),
    linkTarget: text('link_target'),
    /** Numeric owner as the agent saw it; null when the agent did not say (older agents). */
    uid: bigint('uid', { mode: 'number' }),
    gid: bigint('gid', { mode: 'number' }),
    /** Equal for files of one client that were hard links of one inode (an opaque agent-made key). */
    hardlinkGroup: text('hardlink_group'),
    /** The agent stored the bytes as read while the file kept changing (they may be torn). */
    changedWhileRead: boolean('changed_while_read').notNull().default(false),
    validFrom: timestamp('valid_from', { withTimezone: true }).notNull(),
    validTo: timestamp('valid_to', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('file_versions_current_uq').on(t.pathId).where(sql`${t.validTo} is null`),
    index('file_versions_path_from_idx').on(t.pathId, t.validFrom),
    // GC's "is this content still referenced?" and the verify job's "which
    // versions hold it?", equality lookups only; directories and symlinks
    // have none. A hash index: 4-byte hash codes instead of the 32-byte keys
    // a btree keeps, 4.7 MB instead of 7.5 MB per 100,000 files (decision 199).
    index('file_versions_content_idx').using('hash', t.contentSha256).where(sql`${t.contentSha256} is not null`),
  ],
);

export const clientLogs = pgTable(
  'client_logs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    clientId: uuid('client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    runId: uuid('run_id'),
    at: timestamp('at', { withTimezone: true }).notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    level: text('level').$type<'debug' | 'info' | 'warn' | 'error'>().notNull(),
    message: text('message').notNull(),
  },
  // Pages of a client's log are read newest received first (the agent's clock does not order them).
  (t) => [index('client_logs_client_received_idx').on(t.clientId, t.receivedAt, t.id)],
);

export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** null for actions of the system itself (first start, jobs) or of an agent. */
    actorUserId: uuid('actor_user_id').references(() => users.id, { onDelete: 'set null' }),
    actorName: text('actor_name').notNull(),
    action: text('action').notNull(),
    targetType: text('target_type').notNull(),
    targetId: text('target_id'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index('audit_log_at_idx').on(t.at)],
);

/**
 * Alerts opened by the alert engine (server/src/alerts/alert-engine.ts). While
 * an alert is not resolved, its (client, dedupe key) is unique: the same
 * condition never opens a second alert, whichever replica detects it.
 */
export const alerts = pgTable(
  'alerts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    type: text('type').$type<AlertType>().notNull(),
    severity: text('severity').$type<AlertSeverity>().notNull(),
    clientId: uuid('client_id').references(() => clients.id, { onDelete: 'cascade' }),
    /** The condition within its client, e.g. `failing:pre-command:pg_dump ...` (AlertCondition.key). */
    dedupeKey: text('dedupe_key').notNull(),
    path: text('path'),
    observed: text('observed').notNull(),
    reference: text('reference').notNull(),
    message: text('message').notNull(),
    state: text('state').$type<'open' | 'acknowledged' | 'resolved'>().notNull().default('open'),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true }),
    acknowledgedBy: uuid('acknowledged_by').references(() => users.id, { onDelete: 'set null' }),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [
    // coalesce: server-wide alerts (no client) dedupe among themselves too.
    uniqueIndex('alerts_unresolved_uq')
      .on(sql`coalesce(${t.clientId}, '00000000-0000-0000-0000-000000000000'::uuid)`, t.dedupeKey)
      .where(sql`${t.state} <> 'resolved'`),
    index('alerts_state_opened_idx').on(t.state, t.openedAt),
    index('alerts_client_opened_idx').on(t.clientId, t.openedAt),
  ],
);

/**
 * The server-wide alert defaults set in the dashboard (/settings/alerts): one
 * row (id 1) holding only what differs from DEFAULT_ALERT_SETTINGS in code,
 * so a later release's better default still reaches a value nobody changed.
 * No row: the built-in defaults.
 */
export const alertDefaults = pgTable('alert_defaults', {
  id: integer('id').primaryKey(),
  settings: jsonb('settings').$type<AlertSettingsOverride>().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * A user's own alert webhook (decision 96), columns of `users` spread in
 * above; kept down here to keep merges easy (a function declaration, so it is
 * hoisted above the table). The secret is needed in clear to sign each body
 * (HMAC-SHA256), so it is stored as given; it is never shown back or logged.
 */
function userAlertWebhookColumns() {
  return {
    /** Where this user's alerts are POSTed as signed JSON; null = no webhook. */
    alertWebhookUrl: text('alert_webhook_url'),
    /** Key of the HMAC-SHA256 signature; set whenever alertWebhookUrl is. */
    alertWebhookSecret: text('alert_webhook_secret'),
    /** The alert types sent to the webhook, for this user's clients only; empty = none. */
    alertWebhookTypes: jsonb('alert_webhook_types').$type<AlertType[]>().notNull().default(sql`'[]'::jsonb`),
  };
}

// ---- enrollment keys (issue 13) -------------------------------------------

/**
 * Keys an agent registers with instead of a user's password. The key itself
 * is shown once; only its SHA-256 is kept. A key always registers clients of
 * `ownerId` (the creator, or a user an admin chose), only under names that
 * start with `namePrefix` when set, and never takes over an existing client.
 */
export const enrollmentKeys = pgTable(
  'enrollment_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    keyHash: text('key_hash').notNull(),
    /** First characters of the key, to let a person recognise it. */
    keyPrefix: text('key_prefix').notNull(),
    description: text('description').notNull().default(''),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    singleUse: boolean('single_use').notNull(),
    /** null = no expiry (single-use keys only; multi-use keys always expire). */
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    namePrefix: text('name_prefix'),
    useCount: integer('use_count').notNull().default(0),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('enrollment_keys_hash_uq').on(t.keyHash), index('enrollment_keys_owner_idx').on(t.ownerId, t.createdAt)],
);

// ---------------------------------------------------------------------------
// Issue 14: account security. Dashboard sessions live here (not in a signed
// cookie), so sign-out, a password change or reset and disabling a user end
// them at once on every replica; personal API tokens authenticate the
// /api/v1/admin REST surface. Only SHA-256 hashes of either secret are stored.
// ---------------------------------------------------------------------------

/** One signed-in browser. The cookie holds a random id; this row its SHA-256. */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    /** Slid forward by requests (at most once a minute); the idle timeout counts from it. */
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
    /** For the user's list of their sessions only (never trusted for anything). */
    userAgent: text('user_agent').notNull().default(''),
    ip: text('ip').notNull().default(''),
  },
  (t) => [uniqueIndex('sessions_token_hash_uq').on(t.tokenHash), index('sessions_user_idx').on(t.userId)],
);

/** Personal access tokens: `Authorization: Bearer` on /api/v1/admin, with their user's permissions. */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** Read-only tokens get 403 on anything that changes state. */
    readOnly: boolean('read_only').notNull(),
    tokenHash: text('token_hash').notNull(),
    /** First characters of the token, to let a person recognise it. */
    tokenPrefix: text('token_prefix').notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    /** Set when revoked; the row stays for the list and the audit trail. */
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_tokens_token_hash_uq').on(t.tokenHash), index('api_tokens_user_idx').on(t.userId)],
);

// ---- live channel (decision 123) -------------------------------------------

/**
 * The running backup's latest progress report, one row per client, replaced
 * at most once a second by POST /progress and deleted when the run finishes.
 * In the database (not in memory) so any replica's dashboard can show it.
 */
export const clientLiveProgress = pgTable('client_live_progress', {
  clientId: uuid('client_id')
    .primaryKey()
    .references(() => clients.id, { onDelete: 'cascade' }),
  runId: uuid('run_id'),
  progress: jsonb('progress').$type<Record<string, unknown>>().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

// ---- retention rules (issue 14, decision 135) ------------------------------

/**
 * What pruning deleted, one row per pruned version: its path and the span it
 * was current. Only to tell the file browser how many files' versions of a
 * tree "as of" some time are gone (decision 135); no content, no name text.
 */
export const prunedVersionSpans = pgTable(
  'pruned_version_spans',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    clientId: uuid('client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    pathId: bigint('path_id', { mode: 'number' })
      .notNull()
      .references(() => clientPaths.id, { onDelete: 'cascade' }),
    validFrom: timestamp('valid_from', { withTimezone: true }).notNull(),
    validTo: timestamp('valid_to', { withTimezone: true }).notNull(),
  },
  // The browser's "how many were pruned from the tree as of T": valid_from <= T < valid_to, per client.
  (t) => [index('pruned_version_spans_client_from_idx').on(t.clientId, t.validFrom)],
);

// ---- temporary download links (issue 14, decisions 136-138) ----------------

/**
 * A signed, expiring URL for one file version or one folder archive, usable
 * without a session. The URL carries 256 random bits; only their SHA-256 is
 * stored. It works while it has not expired, has not been revoked (its own
 * revoked_at, or the API token that made it), and its user is enabled and
 * may still see the client. `file_version_id` has no foreign key on purpose:
 * retention deletes versions in bulk and must not touch this table; a link
 * to a pruned version answers 410.
 */
export const downloadLinks = pgTable(
  'download_links',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull(),
    /** First characters of the URL's token, for the audit log and a person. */
    tokenPrefix: text('token_prefix').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** The personal access token that made it; null when made on the dashboard. */
    apiTokenId: uuid('api_token_id').references(() => apiTokens.id, { onDelete: 'cascade' }),
    clientId: uuid('client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    /** 'version': one file version; 'archive': a folder's tree as of `as_of`, as .tar.gz. */
    kind: text('kind').$type<'version' | 'archive'>().notNull(),
    fileVersionId: bigint('file_version_id', { mode: 'number' }),
    /** The file's path (version) or the folder (archive). */
    path: text('path').notNull(),
    asOf: timestamp('as_of', { withTimezone: true }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    uses: integer('uses').notNull().default(0),
  },
  (t) => [uniqueIndex('download_links_token_hash_uq').on(t.tokenHash), index('download_links_user_idx').on(t.userId), index('download_links_api_token_idx').on(t.apiTokenId)],
);

// ---- restore jobs (issue 13, decisions 142-146) ----

/** What a restore job's agent reported at the end (shared RestoreJobFinish less its status). */
export interface RestoreJobResult {
  filesRestored: number;
  bytesRestored: number;
  filesFailed: number;
  failures: RestoreJobFailure[];
  command: PreCommandResult | null;
}

/**
 * Restores made on the dashboard (or by a schedule) and carried out by the
 * target client's agent: `source_client_id`'s tree as of `as_of`, under
 * `paths`, written into `target_dir` on `target_client_id`'s machine (the
 * same client or another of the same owner). Queued until the target's
 * agent claims it; a cancel of a queued job ends it at once, of a running
 * one sets `cancel_requested_at` for the agent to see in its next progress
 * answer.
 */
export const restoreJobs = pgTable(
  'restore_jobs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sourceClientId: uuid('source_client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    targetClientId: uuid('target_client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    asOf: timestamp('as_of', { withTimezone: true }).notNull(),
    paths: jsonb('paths').$type<string[]>().notNull(),
    targetDir: text('target_dir').notNull(),
    overwrite: boolean('overwrite').notNull().default(false),
    postCommand: text('post_command'),
    postCommandTimeoutSeconds: integer('post_command_timeout_seconds').notNull().default(600),
    scheduleId: uuid('schedule_id').references(() => restoreSchedules.id, { onDelete: 'set null' }),
    status: text('status').$type<RestoreJobStatus>().notNull().default('queued'),
    createdByUserId: uuid('created_by_user_id').references(() => users.id, { onDelete: 'set null' }),
    createdByName: text('created_by_name').notNull(),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    cancelRequestedAt: timestamp('cancel_requested_at', { withTimezone: true }),
    /** Last progress report (RestoreJobProgress) and when it came. */
    progress: jsonb('progress').$type<RestoreJobProgress>(),
    progressAt: timestamp('progress_at', { withTimezone: true }),
    result: jsonb('result').$type<RestoreJobResult>(),
    error: text('error'),
  },
  (t) => [
    index('restore_jobs_target_status_idx').on(t.targetClientId, t.status, t.createdAt),
    index('restore_jobs_source_created_idx').on(t.sourceClientId, t.createdAt),
    index('restore_jobs_schedule_created_idx').on(t.scheduleId, t.createdAt),
  ],
);

/**
 * Restore jobs made on a schedule ("every night at 04:00, restore the latest
 * /dumps/app.sql from A onto B and load it"): the same fields as a job, and
 * the schedule in the backup schedule's form (interval or cron in a zone).
 * `next_run_at` is when the schedule sweep next queues a job.
 */
export const restoreSchedules = pgTable(
  'restore_schedules',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sourceClientId: uuid('source_client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    targetClientId: uuid('target_client_id')
      .notNull()
      .references(() => clients.id, { onDelete: 'cascade' }),
    paths: jsonb('paths').$type<string[]>().notNull(),
    targetDir: text('target_dir').notNull(),
    overwrite: boolean('overwrite').notNull().default(false),
    postCommand: text('post_command'),
    postCommandTimeoutSeconds: integer('post_command_timeout_seconds').notNull().default(600),
    intervalSeconds: integer('interval_seconds').notNull().default(86_400),
    cron: text('cron'),
    timeZone: text('time_zone').notNull().default('UTC'),
    enabled: boolean('enabled').notNull().default(true),
    nextRunAt: timestamp('next_run_at', { withTimezone: true }),
    lastQueuedAt: timestamp('last_queued_at', { withTimezone: true }),
    createdByUserId: uuid('created_by_user_id').references(() => users.id, { onDelete: 'set null' }),
    createdByName: text('created_by_name').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('restore_schedules_next_idx').on(t.nextRunAt), index('restore_schedules_target_idx').on(t.targetClientId)],
);
/**
 * The server replicas (decision 149): each registers at start with an id of
 * its own, heartbeats, names the periodic jobs whose advisory lock it holds
 * right now, and sets stopped_at at a clean shutdown. A row whose heartbeat
 * is older than CLUSTER_LOST_AFTER_SECONDS (on the database's clock) is a
 * lost replica; stopped and lost rows are deleted a day later.
 */
export const servers = pgTable('servers', {
  id: uuid('id').primaryKey(),
  host: text('host').notNull(),
  pid: integer('pid').notNull(),
  version: text('version').notNull(),
  /** The address it listens on, as it logged it at start. */
  listenUrl: text('listen_url').notNull(),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  heartbeatAt: timestamp('heartbeat_at', { withTimezone: true }).notNull().defaultNow(),
  stoppedAt: timestamp('stopped_at', { withTimezone: true }),
  /** Job names (see JOB_NAMES in server-registry.service.ts) whose lock this replica holds now. */
  runningJobs: text('running_jobs').array().notNull().default(sql`'{}'::text[]`),
});
