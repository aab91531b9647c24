/**
 * TypeBox schemas of the admin REST API (/api/v1/admin, issue 14): what the
 * dashboard shows and changes, as JSON, for personal access tokens. They
 * validate requests and appear in the OpenAPI document (/docs/json).
 */
import { Type, type Static } from 'typebox';
import { ErrorBody, FilePath, FilesPage, FilesQuery, IsoTime, PathPrefix, PreCommand, RunSummary, Uuid } from '@cairn/shared';
import { DETECTOR_LABELS, THRESHOLD_FIELDS } from '../alerts/alert-settings.ts';
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

export const TokenRevoked = Type.Object({ revoked: Type.Literal(true), tokenId: Uuid });

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
/** A metadata export just written (decision 167). */
export const MetadataExportReport = Type.Object({
  /** The manifest's SHA-256: what `npm run recover -- --export` takes. */
  id: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  tables: Type.Integer(),
  rows: Type.Integer(),
  /** Bytes of COPY text exported. */
  bytes: Type.Integer(),
  chunksWritten: Type.Integer(),
  chunksReused: Type.Integer(),
  packBytesWritten: Type.Integer(),
  manifestsDeleted: Type.Integer(),
  packsDeleted: Type.Integer(),
});

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

/** The server replicas (decision 149); `state` and `heartbeatAgeSeconds` on the database's clock. */
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
export const UserIdParams = Type.Object({ id: Uuid });
export const UserTokenParams = Type.Object({ id: Uuid, tokenId: Uuid });
export const UserSessionParams = Type.Object({ id: Uuid, sessionId: Uuid });
export const UserLinkParams = Type.Object({ id: Uuid, linkId: Uuid });
export const Ok = Type.Object({ ok: Type.Literal(true) });

/** A new user: the dashboard's form (username 1 to 64 of letters, digits, . _ @ -; password 8 to 1024 characters). */
export const NewUser = Type.Object(
  {
    username: Type.String({ maxLength: 64 }),
    password: Type.String({ maxLength: 1024 }),
    isAdmin: Type.Optional(Type.Boolean()),
    /** Default: the server's DEFAULT_RETENTION_VERSIONS / _DAYS. */
    retentionVersions: Type.Optional(Type.Integer()),
    retentionDays: Type.Optional(Nullable(Type.Integer())),
  },
  { additionalProperties: false },
);
export const UserStatus = Type.Object({ disabled: Type.Boolean() }, { additionalProperties: false });
export const PasswordReset = Type.Object({ password: Type.String({ maxLength: 1024 }) }, { additionalProperties: false });
export const PasswordChange = Type.Object({ currentPassword: Type.String({ maxLength: 1024 }), newPassword: Type.String({ maxLength: 1024 }) }, { additionalProperties: false });

/** A user's retention policy: versions and days per file, folder rules and restore points. */
export const UserPolicy = Type.Object(
  { retentionVersions: Type.Integer(), retentionDays: Nullable(Type.Integer()), retentionRules: RetentionRules },
  { additionalProperties: false },
);
/** A client's retention override to preview: nulls use the owner's (as in PATCH /clients/:id/config). */
export const ClientRetentionPreview = Type.Object(
  {
    retention: Nullable(Type.Object({ versions: Type.Integer(), days: Nullable(Type.Integer()) }, { additionalProperties: false })),
    retentionRules: Nullable(RetentionRules),
  },
  { additionalProperties: false },
);
const PreviewRow = Type.Object({ clientName: Type.String(), path: Type.String(), validFrom: Type.String(), validTo: Nullable(Type.String()) });
/** The prune simulator's answer: nothing is saved or pruned by a preview. */
export const PrunePreview = Type.Object({
  rules: Type.String(),
  pruneCount: Type.Integer(),
  pruneBytes: Type.Integer(),
  /** False when more versions would go than are listed (the bytes are of the listed ones). */
  bytesComplete: Type.Boolean(),
  pruned: Type.Array(Type.Object({ ...PreviewRow.properties, size: Type.Integer() })),
  keptCount: Type.Integer(),
  kept: Type.Array(Type.Object({ ...PreviewRow.properties, reasons: Type.Array(Type.String()), expiresAt: Nullable(Type.String()) })),
  restorePoints: Type.Array(Type.Object({ clientName: Type.String(), clientId: Uuid, runId: Type.String(), finishedAt: IsoTime, keptBy: Type.Array(Type.String()) })),
  /** Clients with their own override (a user's preview leaves them as they are) and those whose pruning a mass-change alert holds. */
  overridden: Type.Array(Type.String()),
  held: Type.Array(Type.String()),
});

export const AlertEmailSetting = Type.Object(
  {
    /** null: no email to this user. */
    email: Nullable(Type.String({ maxLength: 254 })),
    /** The alert types to send (all but storage_filling may be chosen). */
    types: Type.Array(Type.String({ maxLength: 40 }), { maxItems: 20 }),
  },
  { additionalProperties: false },
);
export const AlertWebhookSetting = Type.Object(
  {
    /** null: no webhook (its stored secret goes too). */
    url: Nullable(Type.String({ maxLength: 2048 })),
    /** A new signing secret; omitted or null keeps the stored one (required while none is stored). */
    secret: Type.Optional(Nullable(Type.String({ maxLength: 256 }))),
    types: Type.Array(Type.String({ maxLength: 40 }), { maxItems: 20 }),
  },
  { additionalProperties: false },
);
export const AlertRecipientSettings = Type.Object({
  email: Nullable(Type.String()),
  emailTypes: Type.Array(Type.String()),
  webhookUrl: Nullable(Type.String()),
  /** The stored secret is never sent back: only its last 4 characters. */
  webhookSecretHint: Nullable(Type.String()),
  webhookTypes: Type.Array(Type.String()),
});

export const SessionList = Type.Object({
  sessions: Type.Array(Type.Object({ id: Uuid, createdAt: IsoTime, lastSeenAt: IsoTime, userAgent: Type.String(), ip: Type.String() })),
});
export const ApiTokenList = Type.Object({
  tokens: Type.Array(
    Type.Object({
      id: Uuid,
      name: Type.String(),
      readOnly: Type.Boolean(),
      tokenPrefix: Type.String(),
      createdAt: IsoTime,
      expiresAt: IsoTime,
      lastUsedAt: Nullable(IsoTime),
      revokedAt: Nullable(IsoTime),
    }),
  ),
});
export const NewApiToken = Type.Object(
  { name: Type.String({ maxLength: 100 }), readOnly: Type.Boolean(), expiresInDays: Type.Optional(Type.Integer()) },
  { additionalProperties: false },
);
export const CreatedApiToken = Type.Object({ id: Uuid, token: Type.String(), name: Type.String(), readOnly: Type.Boolean(), expiresAt: IsoTime });
export const CredentialsRevoked = Type.Object({ tokens: Type.Integer(), links: Type.Integer() });
export const DeleteUserQuery = Type.Object({ confirmUsername: Type.String({ maxLength: 64 }) });
export const UserDeleted = Type.Object({ username: Type.String(), clients: Type.Integer(), versions: Type.Integer() });

export const DownloadLinkList = Type.Object({
  links: Type.Array(
    Type.Object({
      id: Uuid,
      tokenPrefix: Type.String(),
      clientId: Uuid,
      clientName: Type.String(),
      kind: Type.Union([Type.Literal('version'), Type.Literal('archive')]),
      path: Type.String(),
      versionId: Nullable(Type.String()),
      asOf: Nullable(IsoTime),
      createdAt: IsoTime,
      expiresAt: IsoTime,
      uses: Type.Integer(),
      /** The personal access token that made it; null when made on the dashboard. */
      apiTokenName: Nullable(Type.String()),
    }),
  ),
});

export const NewClient = Type.Object(
  {
    name: Line(200),
    hostname: Type.Optional(Line(255)),
    /** Administrators may make it for another user; default: the caller. */
    ownerId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);
/** A client's agent token, shown once (set it as the agent's token). */
export const ClientWithToken = Type.Object({ client: AdminClient, token: Type.String() });
export const ClientOwner = Type.Object({ ownerId: Uuid }, { additionalProperties: false });

/**
 * Alert settings as the dashboard's form has them, per detector: `enabled`
 * and its thresholds (alert-settings.ts THRESHOLD_FIELDS, with the form's
 * limits), `expectedFile.folders` the watched folders.
 */
function alertSettingsSchema(optional: boolean) {
  const wrap = <T extends Parameters<typeof Type.Optional>[0]>(schema: T) => (optional ? Type.Optional(schema) : schema);
  const detectors = Object.keys(DETECTOR_LABELS).map((detector) => {
    const thresholds = THRESHOLD_FIELDS.filter((f) => f.detector === detector).map((f) => [f.setting, wrap(f.integer ? Type.Integer() : Type.Number())] as const);
    const folders =
      detector === 'expectedFile' ? [['folders', wrap(Type.Array(Type.Object({ path: Type.String({ maxLength: 4096 }), maxAgeHours: Type.Number() }, { additionalProperties: false }), { maxItems: 50 }))] as const] : [];
    return [detector, wrap(Type.Object(Object.fromEntries([['enabled', wrap(Type.Boolean())], ...thresholds, ...folders]), { additionalProperties: false }))] as const;
  });
  return Type.Object(Object.fromEntries(detectors), { additionalProperties: false });
}
export const AlertSettingsValues = alertSettingsSchema(false);
export const AlertSettingsAnswer = Type.Object({
  settings: AlertSettingsValues,
  /** True when something differs from the layer below (the server's defaults for a client, the built-in ones for the defaults). */
  overridden: Type.Boolean(),
});
/** Only the values sent change; `reset: true` (alone) goes back to the layer below. */
export const AlertSettingsChange = Type.Object({ ...alertSettingsSchema(true).properties, reset: Type.Optional(Type.Literal(true)) }, { additionalProperties: false });

export const EnrollmentKeyList = Type.Object({
  keys: Type.Array(
    Type.Object({
      id: Uuid,
      keyPrefix: Type.String(),
      description: Type.String(),
      ownerId: Uuid,
      ownerUsername: Type.String(),
      singleUse: Type.Boolean(),
      expiresAt: Nullable(IsoTime),
      namePrefix: Nullable(Type.String()),
      useCount: Type.Integer(),
      lastUsedAt: Nullable(IsoTime),
      revokedAt: Nullable(IsoTime),
      createdAt: IsoTime,
      state: Type.String(),
    }),
  ),
});
export const NewEnrollmentKey = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 200 })),
    singleUse: Type.Boolean(),
    /** Seconds from now, at least 60; null: never (single-use keys only); multi-use at most 90 days. Default 7 days. */
    expiresInSeconds: Type.Optional(Nullable(Type.Integer())),
    /** Clients it registers must have names starting with this. */
    namePrefix: Type.Optional(Nullable(Type.String({ maxLength: 100 }))),
    /** Administrators may make one for another user; default: the caller. */
    ownerId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);
/** The key, shown once: an agent registers with it (ENROLLMENT_KEY). */
export const CreatedEnrollmentKey = Type.Object({ id: Uuid, key: Type.String() });
export const NotificationTestResult = Type.Object({
  outcomes: Type.Array(Type.Object({ channel: Type.String(), target: Type.String(), ok: Type.Boolean(), attempts: Type.Integer(), error: Type.Optional(Type.String()) })),
});
