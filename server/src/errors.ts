import type { FastifyReply } from 'fastify';
import { STORED_CONTENT_DAMAGED } from '@cairn/shared';

/**
 * Typed errors thrown inside the server. The error handler at the edge maps
 * `statusCode` to the HTTP response; 5xx details are logged, never shown.
 */
export class AppError extends Error {
  readonly statusCode: number;
  readonly extra: Record<string, unknown>;
  constructor(
    statusCode: number,
    message: string,
    extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.statusCode = statusCode;
    this.extra = extra;
    this.name = new.target.name;
  }
}

export class BadRequestError extends AppError {
  /** The input field at fault, when the thrower knows it (a form shows `problem` under it); not part of the answer's body. */
  readonly field: string | undefined;
  /** What is wrong, without the field's name: the message itself unless given. */
  readonly problem: string;

  constructor(message: string, extra: Record<string, unknown> = {}, at: { field?: string; problem?: string } = {}) {
    super(400, message, extra);
    this.field = at.field;
    this.problem = at.problem ?? message;
  }

  /** A 400 whose message reads "field: problem", the form every 400 naming a field has. */
  static inField(field: string, problem: string, extra: Record<string, unknown> = {}): BadRequestError {
    return new BadRequestError(`${field}: ${problem}`, extra, { field, problem });
  }
}

/** The uploaded bytes do not hash to the name they were sent under. Nothing was stored. */
export class HashMismatchError extends BadRequestError {
  readonly expected: string;
  readonly actual: string;
  constructor(
    expected: string,
    actual: string,
  ) {
    super(`content hash mismatch: declared ${expected}, received bytes hash to ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'authentication required') {
    super(401, message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'forbidden') {
    super(403, message);
  }
}

/** Also used for other users' data: its existence is not revealed. */
export class NotFoundError extends AppError {
  constructor(message = 'not found') {
    super(404, message);
  }
}

export class ConflictError extends AppError {
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(409, message, extra);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(message: string) {
    super(413, message);
  }
}

/** The blob store ran out of space (ENOSPC, EDQUOT). Nothing was committed. */
export class StorageFullError extends AppError {
  constructor(message = 'insufficient storage: the blob store is full') {
    super(507, message);
  }
}

/**
 * Stored bytes that fail their hash, or an object the database lists but the
 * store lacks. A server-side fault (500-class), never the client's: not a 404,
 * since the caller does hold the content. `detail` (what exactly is wrong) is
 * for the log; the message is the same for every case.
 */
export class StoredContentDamagedError extends AppError {
  readonly sha256: string;
  readonly detail: string;
  constructor(
    sha256: string,
    detail: string,
  ) {
    super(500, 'stored content is damaged or missing', { sha256 });
    this.sha256 = sha256;
    this.detail = detail;
    this.name = STORED_CONTENT_DAMAGED;
  }
}

/**
 * One chunk in a pack failed its check on read (pack missing or cut short,
 * stored bytes that do not decode, or raw bytes of another hash or size).
 * `sha256` is the chunk's; the other chunks of the pack may well be fine.
 */
export class PackChunkDamagedError extends StoredContentDamagedError {
  readonly chunkSha256: string;
  readonly packKey: string;
  readonly problem: string;
  constructor(
    chunkSha256: string,
    packKey: string,
    problem: string,
  ) {
    super(chunkSha256, `chunk ${chunkSha256} in ${packKey}: ${problem}`);
    this.chunkSha256 = chunkSha256;
    this.packKey = packKey;
    this.problem = problem;
  }
}

/**
 * A pack whose own index cannot be trusted (too short, wrong magic or
 * version, index checksum mismatch, entries that do not tile the data): its
 * chunks cannot be located from the pack itself. The database index may
 * still locate them, and each is then checked on its own.
 */
export class PackDamagedError extends AppError {
  readonly packKey: string;
  readonly detail: string;
  constructor(
    packKey: string,
    detail: string,
  ) {
    super(500, 'stored content is damaged or missing');
    this.packKey = packKey;
    this.detail = detail;
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(message: string) {
    super(503, message);
  }
}

/**
 * For error handlers: a streamed reply that failed before its first byte
 * (damaged stored content found at once) left the stream's headers on the raw
 * response, where fastify copies them; they describe bytes never sent, and
 * an attachment name would save the error page as the file.
 */
export function dropStreamHeaders(reply: FastifyReply): void {
  if (reply.raw.headersSent) return;
  for (const name of ['content-type', 'content-length', 'content-disposition']) {
    reply.removeHeader(name);
    reply.raw.removeHeader(name);
  }
}
