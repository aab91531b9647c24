/**
 * The agent sorts every failed request into one of two kinds: retryable
 * (network trouble, 5xx, 429) and permanent (any other 4xx). Callers retry the
 * first with backoff and report the second.
 */
export class RetryableError extends Error {
  readonly statusCode?: number;
  constructor(
    message: string,
    statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.statusCode = statusCode;
    this.name = 'RetryableError';
  }
}

export class PermanentError extends Error {
  readonly statusCode: number;
  /** Content hashes the server named as missing (a changes request naming content the user does not hold). */
  readonly missing: string[];
  constructor(
    message: string,
    statusCode: number,
    missing: string[] = [],
  ) {
    super(message);
    this.statusCode = statusCode;
    this.missing = missing;
    this.name = 'PermanentError';
  }
}

/**
 * The server's stored copy of a content is damaged or missing (it said so, or
 * a download broke off and the server's check then found the bytes bad).
 * Asking again does not help, so it is neither retried nor the agent's fault.
 */
export class StoredContentDamagedError extends Error {
  constructor() {
    super('stored content is damaged or missing on the server');
    this.name = 'StoredContentDamagedError';
  }
}

/** 401/403: the token was revoked or the credentials are wrong. */
export function isAuthError(error: unknown): boolean {
  return error instanceof PermanentError && (error.statusCode === 401 || error.statusCode === 403);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
