/**
 * TypeBox schemas of the admin REST API (/api/v1/admin, issue 14): what the
 * dashboard shows and changes, as JSON, for personal access tokens. They
 * validate requests and appear in the OpenAPI document (/docs/json).
 */
import { Type, type Static } from 'typebox';
import { ErrorBody, FilePath, FilesPage, FilesQuery, IsoTime, PathPrefix, PreCommand, RunSummary, Uuid } from '@cairn/shared';
import { ALERT_TYPE_LABELS } from '../dashboard/view-helpers.ts';

/** Null first: with coerceTypes, ajv would turn a null into 0 or "" for a first non-null branch. */
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([Type.Null(), schema]);
/** One line of text: the dashboard's form fields are lines, so a line break would change the meaning. */
const Line = (maxLength: number) => Type.String({ maxLength, pattern: '^[^\\r\\n\\u0000]*$' });

/** An error answer; `fields` names each invalid field with the dashboard's message for it. */
export const AdminError = Type.Object({
  ...ErrorBody.properties,
  fields: Type.Optional(Type.Record(Type.String(), Type.String())),
});

export const IdParams = Type.Object({ id: Uuid });

export const Retention = Type.Object({
  /** null: the owner's policy applies. */
  versions: Nullable(Type.Integer()),
  days: Nullable(Type.Integer()),
});

const Count = Type.Integer({ minimum: 0 });
/** Folder rules and restore-point counts (decision 134); checked by the dashboard form's rules, with its messages. */
export const RetentionRules = Type.Object(
  {
    folders: Type.Array(
      Type.Object(
        {
          folder: Line(4096),
          rules: Type.Array(Type.Object({ count: Type.Integer(), minAgeDays: Type.Integer() }, { additionalProperties: false }), { maxItems: 10 }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 100 },
    ),
    restorePoints: Type.Object(
      { last: Count, hourly: Count, daily: Count, weekly: Count, monthly: Count, yearly: Count },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

export const AdminClient = Type.Object({
  id: Uuid,
  name: Type.String(),
  hostname: Type.String(),
  ownerId: Uuid,
  ownerUsername: Type.String(),
  agentVersion: Nullable(Type.String()),
  tokenPrefix: Nullable(Type.String()),
  lastPingAt: Nullable(IsoTime),
  lastBackupAt: Nullable(IsoTime),
  runRequestedAt: Nullable(IsoTime),
  backupIntervalSeconds: Type.Integer(),
  retention: Retention,
  /** null: the owner's folder rules and restore points apply. */
  retentionRules: Nullable(RetentionRules),
  createdAt: IsoTime,
});
export type AdminClient = Static<typeof AdminClient>;

export const AdminClientDetail = Type.Object({
  ...AdminClient.properties,
  monitoredPaths: Type.Array(Type.String()),
  excludes: Type.Array(Type.String()),
  preCommands: Type.Array(PreCommand),
});

export const ClientList = Type.Object({ clients: Type.Array(AdminClient) });

/**
 * A change of a client's central configuration: only the fields sent change.
 * Checked by the dashboard form's rules, with its messages.
 */
export const ClientConfigUpdate = Type.Object(
  {
    monitoredPaths: Type.Optional(Type.Array(Line(4096), { maxItems: 500 })),
    excludes: Type.Optional(Type.Array(Line(1024), { maxItems: 500 })),
    preCommands: Type.Optional(
      Type.Array(Type.Object({ command: Line(4096), timeoutSeconds: Type.Optional(Type.Integer()) }, { additionalProperties: false }), { maxItems: 50 }),
    ),
    backupIntervalSeconds: Type.Optional(Type.Integer()),
    /** null: use the owner's policy; an object: this client's own (days null = no age limit). */
    retention: Type.Optional(Nullable(Type.Object({ versions: Type.Integer(), days: Nullable(Type.Integer()) }, { additionalProperties: false }))),
    /** null: use the owner's folder rules and restore points; an object: this client's own. */
    retentionRules: Type.Optional(Nullable(RetentionRules)),
  },
  { additionalProperties: false },
);
export type ClientConfigUpdate = Static<typeof ClientConfigUpdate>;

export const RunRequested = Type.Object({ runRequested: Type.Boolean() });

export const AdminRun = Type.Object({ ...RunSummary.properties, trigger: Type.String() });
export const RunList = Type.Object({ runs: Type.Array(AdminRun) });
export const RunsQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) });

export { FilesPage, FilesQuery };

export const AdminUser = Type.Object({
  id: Uuid,
  username: Type.String(),
  isAdmin: Type.Boolean(),
  disabled: Type.Boolean(),
  retentionVersions: Type.Integer(),
  retentionDays: Nullable(Type.Integer()),
  retentionRules: RetentionRules,
  createdAt: IsoTime,
});
export const UserList = Type.Object({ users: Type.Array(AdminUser) });

export const Me = Type.Object({
  user: Type.Object({ id: Uuid, username: Type.String(), isAdmin: Type.Boolean() }),
  token: Type.Object({ id: Uuid, name: Type.String(), readOnly: Type.Boolean() }),
});

const ALERT_TYPES = Object.keys(ALERT_TYPE_LABELS);
export const ALERT_STATES = ['unresolved', 'open', 'acknowledged', 'resolved', 'all'] as const;

export const AlertsQuery = Type.Object({
  state: Type.Optional(Type.Union(ALERT_STATES.map((s) => Type.Literal(s)))),
  type: Type.Optional(Type.Union(ALERT_TYPES.map((t) => Type.Literal(t)))),
  clientId: Type.Optional(Uuid),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
});
export type AlertsQuery = Static<typeof AlertsQuery>;

export const AdminAlert = Type.Object({
  id: Uuid,
  type: Type.String(),
  severity: Type.String(),
  clientId: Nullable(Uuid),
  clientName: Nullable(Type.String()),
  path: Nullable(Type.String()),
  message: Type.String(),
  state: Type.String(),
  openedAt: IsoTime,
  acknowledgedAt: Nullable(IsoTime),
  acknowledgedBy: Nullable(Type.String()),
  resolvedAt: Nullable(IsoTime),
});
export const AlertList = Type.Object({ alerts: Type.Array(AdminAlert) });
export const Acknowledged = Type.Object({ ok: Type.Boolean() });

const VerifyRun = Type.Object({
  id: Type.Integer(),
  trigger: Type.String(),
  status: Type.String(),
  /** The replica that ran it (GET /servers lists them); null for runs older than the registry. */
  serverId: Type.Union([Type.String(), Type.Null()]),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  packsPlanned: Type.Integer(),
  packsChecked: Type.Integer(),
  objectsChecked: Type.Integer(),
  chunksChecked: Type.Integer(),
  bytesRead: Type.Integer(),
  damagedChunks: Type.Integer(),
  /** Packs and v1 objects it found damaged or missing and put back from the replica store's verified copy. */
  packsRepaired: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
});
export const VerifyReport = Type.Object({
  runs: Type.Array(VerifyRun),
  damaged: Type.Array(
    Type.Object({
      sha256: Type.String(),
      damagedAt: Type.String({ format: 'date-time' }),
      problem: Type.Union([Type.String(), Type.Null()]),
      affected: Type.Array(
        Type.Object({
          clientId: Type.String(),
          clientName: Type.String(),
          path: Type.String(),
          versionId: Type.Integer(),
          validFrom: Type.String({ format: 'date-time' }),
          validTo: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        }),
      ),
    }),
  ),
});
/** How far the replica store is behind the primary (storage/replication-job.ts ReplicaStatus). */
export const ReplicaReport = Type.Object({
  /** false: no REPLICA_DIR or REPLICA_S3_BUCKET is set; every figure is 0. */
  configured: Type.Boolean(),
  location: Type.Union([Type.String(), Type.Null()]),
  packsBehind: Type.Integer(),
  objectsBehind: Type.Integer(),
  bytesBehind: Type.Integer(),
  /** When the oldest pack not yet copied was committed; null when none is behind. */
  oldestPendingAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lagSeconds: Type.Integer(),
  copiedObjects: Type.Integer(),
  copiedBytes: Type.Integer(),
  /** Copies of objects GC deleted from the primary, kept until REPLICA_DELETE_GRACE_SECONDS passed. */
  awaitingDeletion: Type.Integer(),
  lastCopiedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  /** The lag past which the replica_lagging alert opens (REPLICA_LAG_ALERT_SECONDS). */
  lagAlertSeconds: Type.Integer(),
});
export const VerifyStarted = Type.Object({ started: Type.Literal(true) });

/**
 * A temporary download link to make: exactly one of `versionId` (one file
 * version), `path` (the file at that path as of `asOf`, default now) or
 * `folder` (the folder's tree as of `asOf` as a .tar.gz; `/` for everything).
 */
export const NewDownloadLink = Type.Object(
  {
    versionId: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    path: Type.Optional(FilePath),
    folder: Type.Optional(PathPrefix),
    asOf: Type.Optional(IsoTime),
    /** Default 3600 (1 hour); at most 604800 (7 days). */
    expiresInSeconds: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type NewDownloadLink = Static<typeof NewDownloadLink>;

export const DownloadLink = Type.Object({
  id: Uuid,
  /** The URL to hand out: works without a session until `expiresAt`. Shown once. */
  url: Type.String(),
  kind: Type.Union([Type.Literal('version'), Type.Literal('archive')]),
  path: Type.String(),
  versionId: Nullable(Type.String()),
  asOf: Nullable(IsoTime),
  expiresAt: IsoTime,
});

/** The server replicas (decision 170); `state` and `heartbeatAgeSeconds` on the database's clock. */
export const ServerList = Type.Object({
  servers: Type.Array(
    Type.Object({
      id: Type.String(),
      host: Type.String(),
      pid: Type.Integer(),
      version: Type.String(),
      listenUrl: Type.String(),
      startedAt: Type.String({ format: 'date-time' }),
      heartbeatAt: Type.String({ format: 'date-time' }),
      stoppedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      heartbeatAgeSeconds: Type.Number(),
      state: Type.Union([Type.Literal('running'), Type.Literal('lost'), Type.Literal('stopped')]),
      /** Job locks it holds now (retention, gc, verify, v1-to-packs, alerts); for a lost replica, those it held when it went silent. */
      runningJobs: Type.Array(Type.String()),
      /** The replica that answered this request. */
      isThisServer: Type.Boolean(),
    }),
  ),
});
