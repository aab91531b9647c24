/**
 * Agent protocol v1: every request and response body that crosses the wire
 * between agent and server, defined once. The server validates and serializes
 * with these schemas; the agent types its requests with `Static<>`.
 *
 * All agent routes live under `API_PREFIX` and authenticate with
 * `Authorization: Bearer <token>` (except `register`).
 */
import { Type, type Static } from 'typebox';
import { CANONICAL_PATH_PATTERN, CANONICAL_PREFIX_PATTERN } from './paths.ts';
import { STORABLE_TEXT_PATTERN } from './text.ts';

export const API_PREFIX = '/api/v1';
export const PROTOCOL_VERSION = 1;

/** Limits shared by both sides so the agent never builds a request the server refuses. */
export const LIMITS = {
  /** Hashes per "which are missing?" request. */
  missingBatch: 10_000,
  /** Upserts + deletes per changes request. */
  changesBatch: 5_000,
  /** Parts per multipart upload request. */
  uploadParts: 1_000,
  /** Bytes the agent aims to put into one multipart request (many small files together). */
  uploadBatchBytes: 64 * 1024 * 1024,
  /** Largest single JSON body. */
  jsonBodyBytes: 16 * 1024 * 1024,
  /** Longest stored path, in bytes of UTF-8. */
  pathBytes: 4096,
  /** Log entries per request. */
  logBatch: 1_000,
  /** Captured output of one pre-command, in bytes. */
  commandOutputBytes: 64 * 1024,
  /** Items per list of an agent's local configuration report (paths, excludes, pre-commands, allow-list). */
  localConfigItems: 1_000,
  /** Page size of file listings. */
  pageSize: 1_000,
  maxPageSize: 10_000,
} as const;

/** Largest value of a PostgreSQL `integer` column. */
export const INT32_MAX = 2 ** 31 - 1;
/** A count of bytes: a `bigint` column read as a JavaScript number, exact up to 2^53. */
export const ByteCount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A count of files: an `integer` column. */
export const FileCount = Type.Integer({ minimum: 0, maximum: INT32_MAX });

export const Sha256 = Type.String({ pattern: '^[a-f0-9]{64}$', description: 'lower-case hex SHA-256' });
export const Uuid = Type.String({ format: 'uuid' });
/**
 * Absolute POSIX path of a file on the client, as the agent saw it, in its
 * canonical form (paths.ts): a non-canonical path is refused, never rewritten.
 * Names that are not valid UTF-8 are spelled with byte escapes (posix-names.ts).
 */
export const FilePath = Type.String({ minLength: 1, maxLength: LIMITS.pathBytes, pattern: CANONICAL_PATH_PATTERN });
/** A FilePath or the root `/`: where to list from. */
export const PathPrefix = Type.String({ minLength: 1, maxLength: LIMITS.pathBytes, pattern: CANONICAL_PREFIX_PATTERN });
/**
 * An identifier-like string (a name, hostname, symlink target, command):
 * PostgreSQL must store it exactly, so NUL and unpaired surrogates are refused
 * (text.ts). Free-form captured text is a plain `Type.String`, which the
 * server stores through `storableText` instead.
 */
export const Text = (options: { minLength?: number; maxLength?: number } = {}) => Type.String({ ...options, pattern: STORABLE_TEXT_PATTERN });
/** Seconds of an RFC 3339 time are not 60: a JavaScript Date cannot hold a leap second. */
export const ISO_TIME_PATTERN = '^.{17}(?!60)';
export const IsoTime = Type.String({ format: 'date-time', pattern: ISO_TIME_PATTERN });

export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String(),
  message: Type.String(),
  /** Extra machine-readable facts, e.g. `missing` content hashes. */
  missing: Type.Optional(Type.Array(Sha256)),
});
export type ErrorBody = Static<typeof ErrorBody>;

/**
 * `ErrorBody.error` of the 500 that means the server's stored copy of a
 * content is damaged or missing: a fault of the store, not of the request,
 * and not cured by asking again (agents do not retry it).
 */
export const STORED_CONTENT_DAMAGED = 'StoredContentDamagedError';

// ---- register -------------------------------------------------------------

export const RegisterRequest = Type.Object({
  username: Text({ minLength: 1, maxLength: 200 }),
  /** Only hashed, never stored: any text. */
  password: Type.String({ minLength: 1, maxLength: 1024 }),
  clientName: Text({ minLength: 1, maxLength: 200 }),
  hostname: Text({ minLength: 1, maxLength: 255 }),
  agentVersion: Type.Optional(Text({ maxLength: 64 })),
});
export type RegisterRequest = Static<typeof RegisterRequest>;

export const RegisterResponse = Type.Object({
  clientId: Uuid,
  /** Shown once; the server stores only its SHA-256. */
  token: Type.String(),
  /** Where a person sees this client in the dashboard. */
  dashboardUrl: Type.String(),
});
export type RegisterResponse = Static<typeof RegisterResponse>;

/**
 * `POST /enroll`: registration with an enrollment key made on the dashboard
 * instead of a user's password. The key decides the owner (and may require a
 * name prefix); it never takes over an existing client of that name (409).
 * Answers 401 naming the problem for an unknown, revoked, expired or used key.
 */
export const EnrollRequest = Type.Object({
  /** Only hashed, never stored or logged. */
  enrollmentKey: Type.String({ minLength: 1, maxLength: 256 }),
  clientName: Text({ minLength: 1, maxLength: 200 }),
  hostname: Text({ minLength: 1, maxLength: 255 }),
  agentVersion: Type.Optional(Text({ maxLength: 64 })),
});
export type EnrollRequest = Static<typeof EnrollRequest>;

// ---- config and ping ------------------------------------------------------

/** A backup schedule (schedule.ts): the interval, or a cron expression in a zone, with an optional window. */
export const BackupScheduleBody = Type.Object({
  intervalSeconds: Type.Integer({ minimum: 60 }),
  cron: Type.Union([Type.String(), Type.Null()]),
  timeZone: Type.String(),
  window: Type.Union([Type.Object({ start: Type.String(), end: Type.String() }), Type.Null()]),
});

export const PreCommand = Type.Object({
  command: Text({ minLength: 1, maxLength: 4096 }),
  timeoutSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
});
export type PreCommand = Static<typeof PreCommand>;

export const ClientConfig = Type.Object({
  clientId: Uuid,
  name: Type.String(),
  /** Extra paths to back up, set centrally; the agent adds its local ones. */
  monitoredPaths: Type.Array(Type.String()),
  /** fast-glob ignore patterns. */
  excludes: Type.Array(Type.String()),
  preCommands: Type.Array(PreCommand),
  backupIntervalSeconds: Type.Integer({ minimum: 60 }),
  /** The whole schedule (its interval equals backupIntervalSeconds); older servers send none. */
  schedule: Type.Optional(BackupScheduleBody),
  pingIntervalSeconds: Type.Integer({ minimum: 5 }),
  dashboardUrl: Type.String(),
});
export type ClientConfig = Static<typeof ClientConfig>;

/**
 * What the agent is configured with on its own machine (its environment or
 * its setup page), which it adds to the central configuration: sent with
 * every ping so the dashboard shows it beside the central one, each item
 * marked local. Only these fields, never a secret: no password, token or
 * enrollment key (decision 157). A list longer than LIMITS.localConfigItems,
 * or an item the schema would refuse, is left out by the agent and
 * `truncated` says so, so a report never costs the heartbeat.
 */
export const LocalConfigReport = Type.Object({
  /** Local monitored paths (MONITORED_PATHS or the setup page), normalised. */
  monitoredPaths: Type.Array(Text({ minLength: 1, maxLength: LIMITS.pathBytes }), { maxItems: LIMITS.localConfigItems }),
  /** EXCLUDES: fast-glob patterns. */
  excludes: Type.Array(Text({ minLength: 1, maxLength: 4096 }), { maxItems: LIMITS.localConfigItems }),
  /** PRE_COMMANDS, each with PRE_COMMAND_TIMEOUT; run after the central ones. */
  preCommands: Type.Array(PreCommand, { maxItems: LIMITS.localConfigItems }),
  /** ALLOW_REMOTE_COMMANDS: whether commands from the server run on this machine at all. */
  allowRemoteCommands: Type.Boolean(),
  // Null first: the server's Ajv coerces types, and would turn null into the first branch's 0 or ''.
  /** REMOTE_COMMAND_ALLOWLIST when set: a server command runs only when equal to one of these. */
  remoteCommandAllowlist: Type.Union([Type.Null(), Type.Array(Text({ minLength: 1, maxLength: 4096 }), { maxItems: LIMITS.localConfigItems })]),
  /** BACKUP_INTERVAL when set: it overrides the server's schedule on this machine. */
  backupIntervalSeconds: Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: INT32_MAX })]),
  /** Some item was left out (too many, or too long to report). */
  truncated: Type.Optional(Type.Boolean()),
});
export type LocalConfigReport = Static<typeof LocalConfigReport>;

export const PingRequest = Type.Object({
  agentVersion: Type.Optional(Text({ maxLength: 64 })),
  hostname: Type.Optional(Text({ maxLength: 255 })),
  /** What the agent is doing right now, for the dashboard. */
  state: Type.Optional(Type.Union([Type.Literal('idle'), Type.Literal('running')])),
  /** The agent's local configuration; absent from older agents (the server then keeps what it last had). */
  localConfig: Type.Optional(LocalConfigReport),
});
export type PingRequest = Static<typeof PingRequest>;

export const PingResponse = Type.Object({
  serverTime: IsoTime,
  /** A person pressed "back up now" in the dashboard; cleared by starting a run. */
  runRequested: Type.Boolean(),
  /** The current schedule, so an agent waiting for a cron time learns of an edit at its next ping. */
  schedule: Type.Optional(BackupScheduleBody),
  /** A restore job waits for this agent (see restore-jobs.ts): claim it. Absent from servers before restore jobs. */
  restoreJobsPending: Type.Optional(Type.Boolean()),
});
export type PingResponse = Static<typeof PingResponse>;

// ---- runs -----------------------------------------------------------------

export const StartRunRequest = Type.Object({
  trigger: Type.Optional(Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('server')])),
});
export type StartRunRequest = Static<typeof StartRunRequest>;

export const StartRunResponse = Type.Object({
  runId: Uuid,
  /**
   * Contents of this client's current files that the server found damaged
   * (decision 128): the agent reads those files again even when they look
   * unchanged, so "which are missing?" gets to ask for the bytes and the
   * store heals. At most 10,000; absent from older servers.
   */
  recheck: Type.Optional(Type.Array(Sha256, { maxItems: 10_000 })),
});
export type StartRunResponse = Static<typeof StartRunResponse>;

export const MissingRequest = Type.Object({
  hashes: Type.Array(Sha256, { maxItems: LIMITS.missingBatch }),
});
export type MissingRequest = Static<typeof MissingRequest>;

export const MissingResponse = Type.Object({
  /** The subset of the asked hashes this user has not proven to hold. */
  missing: Type.Array(Sha256),
});
export type MissingResponse = Static<typeof MissingResponse>;

/**
 * Upload: `POST /contents`, multipart/form-data, one file part per content,
 * the part's field name being the content's SHA-256. The server hashes each
 * part while streaming and rejects a mismatch (400) keeping nothing of it.
 */
export const UploadResult = Type.Object({
  sha256: Sha256,
  size: Type.Integer({ minimum: 0 }),
  /**
   * `stored`: this user did not hold these bytes before; `existing`: they did. Whether anyone else
   * holds them never changes the answer, the figures or the work done (decision 126).
   */
  status: Type.Union([Type.Literal('stored'), Type.Literal('existing')]),
});
export type UploadResult = Static<typeof UploadResult>;

export const UploadResponse = Type.Object({ results: Type.Array(UploadResult) });
export type UploadResponse = Static<typeof UploadResponse>;

/**
 * `POST /contents/assemble` (body: shared/src/assemble-format.ts): contents
 * of several chunks, each committed as its hash, size and ordered chunk list
 * once this user holds every chunk. The server reads the chunks back and
 * checks that they add up to the content's hash and size before it accepts
 * the content; a chunk the user does not hold refuses the request (409
 * naming the `missing` chunks) and keeps the contents before it.
 * `stored`: the user did not hold the content before; `existing`: they did.
 */
export const AssembleResult = Type.Object({
  sha256: Sha256,
  size: ByteCount,
  status: Type.Union([Type.Literal('stored'), Type.Literal('existing')]),
});
export type AssembleResult = Static<typeof AssembleResult>;
export const AssembleResponse = Type.Object({ results: Type.Array(AssembleResult) });
export type AssembleResponse = Static<typeof AssembleResponse>;

/**
 * `POST /contents?runId=`: optional. The run the upload belongs to, so the
 * server can count the bytes it newly stores as that run's `bytesNew`.
 */
export const UploadQuery = Type.Object({ runId: Type.Optional(Uuid) });
export type UploadQuery = Static<typeof UploadQuery>;

export const FileKind = Type.Union([Type.Literal('file'), Type.Literal('symlink'), Type.Literal('directory')]);
export type FileKind = Static<typeof FileKind>;

/** A numeric POSIX user or group id (names are not kept: decision 54). */
export const OwnerId = Type.Integer({ minimum: 0, maximum: 0xffff_ffff });

/**
 * Which hard-linked files share one inode: an opaque key the agent derives
 * from (device, inode) of a file with more than one link. Equal keys of one
 * client mean "the same inode at backup time"; the server never reads
 * meaning into it and never compares keys across clients.
 */
export const HardlinkGroup = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });

export const FileUpsert = Type.Object({
  path: FilePath,
  kind: FileKind,
  /** Content hash; null for symlinks and directories. */
  sha256: Type.Union([Sha256, Type.Null()]),
  /** Bytes of content; the server stores 0 for a directory whatever is sent. */
  size: ByteCount,
  /** Modification time in milliseconds since the epoch (the client's clock; informational only). */
  mtimeMs: Type.Number(),
  /** POSIX mode bits (permission and type bits). */
  mode: Type.Integer({ minimum: 0, maximum: INT32_MAX }),
  /** Any text but NUL (POSIX targets are bytes: byte escapes as for paths); relative and `..` are fine here. */
  linkTarget: Type.Optional(Text({ maxLength: LIMITS.pathBytes })),
  /** Owner; optional so older agents still work. */
  uid: Type.Optional(OwnerId),
  gid: Type.Optional(OwnerId),
  /** Files only, and only when the file has more than one link. */
  hardlinkGroup: Type.Optional(HardlinkGroup),
  /** The file kept changing while read; the content is the bytes as read, which may never have existed at one moment. */
  changedWhileRead: Type.Optional(Type.Boolean()),
});
export type FileUpsert = Static<typeof FileUpsert>;

export const ChangesRequest = Type.Object({
  upserts: Type.Array(FileUpsert, { maxItems: LIMITS.changesBatch }),
  deletes: Type.Array(FilePath, { maxItems: LIMITS.changesBatch }),
});
export type ChangesRequest = Static<typeof ChangesRequest>;

export const ChangesResponse = Type.Object({
  /** Versions opened (new or changed files). Unchanged upserts are no-ops. */
  opened: Type.Integer(),
  /** Versions closed (changed or deleted files). */
  closed: Type.Integer(),
});
export type ChangesResponse = Static<typeof ChangesResponse>;

/**
 * `command`, `output` (and a run's `error`, a log line's `message`) are free
 * text the agent captured: never refused for what they contain; the server
 * spells NUL and unpaired surrogates visibly (`storableText`), so a finish
 * always lands.
 */
export const PreCommandResult = Type.Object({
  command: Type.String(),
  source: Type.Union([Type.Literal('server'), Type.Literal('local')]),
  /** null when killed by a signal or never started. */
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  durationMs: Type.Integer({ minimum: 0 }),
  timedOut: Type.Boolean(),
  /** Combined stdout and stderr, capped at LIMITS.commandOutputBytes. */
  output: Type.String({ maxLength: LIMITS.commandOutputBytes * 2 }),
  /** Set when the agent refused to run it (ALLOW_REMOTE_COMMANDS=false or not allow-listed). */
  refused: Type.Optional(Type.Boolean()),
});
export type PreCommandResult = Static<typeof PreCommandResult>;

export const RunStatus = Type.Union([
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('partial'),
  Type.Literal('failed'),
]);
export type RunStatus = Static<typeof RunStatus>;

export const RunStats = Type.Object({
  filesScanned: FileCount,
  filesChanged: FileCount,
  filesDeleted: FileCount,
  filesFailed: FileCount,
  bytesScanned: ByteCount,
  bytesUploaded: ByteCount,
});
export type RunStats = Static<typeof RunStats>;

export const FinishRunRequest = Type.Object({
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('partial'), Type.Literal('failed')]),
  stats: RunStats,
  preCommands: Type.Array(PreCommandResult, { maxItems: 100 }),
  error: Type.Optional(Type.String({ maxLength: 8192 })),
});
export type FinishRunRequest = Static<typeof FinishRunRequest>;

export const RunSummary = Type.Object({
  runId: Uuid,
  status: RunStatus,
  startedAt: IsoTime,
  finishedAt: Type.Union([IsoTime, Type.Null()]),
  filesScanned: Type.Integer(),
  filesChanged: Type.Integer(),
  filesDeleted: Type.Integer(),
  filesFailed: Type.Integer(),
  bytesScanned: Type.Integer(),
  bytesUploaded: Type.Integer(),
  /** Bytes this run added to the store (new objects), measured by the server. */
  bytesNew: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
});
export type RunSummary = Static<typeof RunSummary>;

// ---- listings and restore ---------------------------------------------------

export const FileVersion = Type.Object({
  versionId: Type.String(),
  path: FilePath,
  kind: FileKind,
  sha256: Type.Union([Sha256, Type.Null()]),
  size: Type.Integer(),
  mtimeMs: Type.Number(),
  mode: Type.Integer(),
  linkTarget: Type.Union([Type.String(), Type.Null()]),
  /** Absent or null when the agent that sent the version did not say. */
  uid: Type.Optional(Type.Union([OwnerId, Type.Null()])),
  gid: Type.Optional(Type.Union([OwnerId, Type.Null()])),
  hardlinkGroup: Type.Optional(Type.Union([HardlinkGroup, Type.Null()])),
  validFrom: IsoTime,
  validTo: Type.Union([IsoTime, Type.Null()]),
  /** Present (true) only when the agent stored the bytes as read while the file kept changing (FileUpsert.changedWhileRead). */
  changedWhileRead: Type.Optional(Type.Boolean()),
});
export type FileVersion = Static<typeof FileVersion>;

/**
 * `GET /files`: the tree as of `asOf` (default: now), ordered by path,
 * paged by `after` (the last path of the previous page).
 */
export const FilesQuery = Type.Object({
  asOf: Type.Optional(IsoTime),
  prefix: Type.Optional(PathPrefix),
  after: Type.Optional(FilePath),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxPageSize })),
});
export type FilesQuery = Static<typeof FilesQuery>;

export const FilesPage = Type.Object({
  files: Type.Array(FileVersion),
  /** Pass as `after` to get the next page; null on the last page. */
  nextAfter: Type.Union([Type.String(), Type.Null()]),
});
export type FilesPage = Static<typeof FilesPage>;

/** `GET /versions?path=`: every retained version of one path, newest first. */
export const VersionsQuery = Type.Object({ path: FilePath });
export type VersionsQuery = Static<typeof VersionsQuery>;
export const VersionsResponse = Type.Object({ versions: Type.Array(FileVersion) });
export type VersionsResponse = Static<typeof VersionsResponse>;

/**
 * `GET /contents/:sha256`: the bytes, streamed; 404 unless this user holds the
 * content. They are checked against the hash on the way out: stored bytes
 * found damaged (or missing) before the headers give a 500 with `error`
 * STORED_CONTENT_DAMAGED; found damaged later, the transfer is cut off before
 * its end. `GET /contents/:sha256/verify` then tells which it was: it reads
 * the stored bytes whole and answers OkResponse, or that same 500.
 */
export const ContentParams = Type.Object({ sha256: Sha256 });
export type ContentParams = Static<typeof ContentParams>;

export const RunParams = Type.Object({ runId: Uuid });
export type RunParams = Static<typeof RunParams>;

// ---- logs -------------------------------------------------------------------

export const LogLevel = Type.Union([
  Type.Literal('debug'),
  Type.Literal('info'),
  Type.Literal('warn'),
  Type.Literal('error'),
]);
export type LogLevel = Static<typeof LogLevel>;

export const LogEntry = Type.Object({
  at: IsoTime,
  level: LogLevel,
  message: Type.String({ maxLength: 8192 }),
  runId: Type.Optional(Uuid),
});
export type LogEntry = Static<typeof LogEntry>;

export const LogsRequest = Type.Object({ entries: Type.Array(LogEntry, { maxItems: LIMITS.logBatch }) });
export type LogsRequest = Static<typeof LogsRequest>;

export const OkResponse = Type.Object({ ok: Type.Boolean() });
export type OkResponse = Static<typeof OkResponse>;

// ---- live channel (decision 122) ------------------------------------------

/**
 * GET /events: a server-sent-events stream the agent holds open. Each event
 * names what changed, never carries the data: the agent then pings (and
 * fetches /config), so the heartbeat's answer stays the one source of truth.
 * `hello` comes first on every connection (catch up on anything missed while
 * away); `restore`: a restore job was queued or cancelled for this agent; `revoked` comes just before the server closes a stream whose token
 * was revoked or replaced.
 */
export const LIVE_EVENTS = ['hello', 'run', 'config', 'revoked', 'restore'] as const;
export type LiveEvent = (typeof LIVE_EVENTS)[number];

/** POST /progress: the running backup's progress, at most once a second (LIMITS-free: a small fixed body). */
export const ProgressRequest = Type.Object({
  // Null first: the server's Ajv coerces types, and would turn null into the first branch's 0 or ''.
  runId: Type.Union([Type.Null(), Uuid]),
  phase: Type.Union([
    Type.Literal('config'),
    Type.Literal('pre-commands'),
    Type.Literal('scanning'),
    Type.Literal('hashing'),
    Type.Literal('uploading'),
    Type.Literal('committing'),
    Type.Literal('finishing'),
  ]),
  startedAt: IsoTime,
  filesScanned: FileCount,
  filesToCheck: FileCount,
  filesChecked: FileCount,
  filesCommitted: FileCount,
  bytesToHash: ByteCount,
  bytesHashed: ByteCount,
  bytesUploaded: ByteCount,
  /** Bytes hashed per second over the run so far. */
  bytesPerSecond: Type.Number({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  /** Seconds until the hashing is done at that rate; null while unknown. */
  etaSeconds: Type.Union([Type.Null(), Type.Integer({ minimum: 0, maximum: INT32_MAX })]),
});
export type ProgressRequest = Static<typeof ProgressRequest>;
