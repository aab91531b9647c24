/**
 * The agent sorts every failed request into one of two kinds: retryable
 * (network trouble, 5xx, 429) and permanent (any other 4xx). Callers retry the
 * first with backoff and report the second.
 */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryableError';
  }
}

export class PermanentError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
    /** Content hashes the server named as missing (a changes request naming content the user does not hold). */
    readonly missing: string[] = [],
  ) {
    super(message);
    this.name = 'PermanentError';
  }
}

/** 401/403: the token was revoked or the credentials are wrong. */
export function isAuthError(error: unknown): boolean {
  return error instanceof PermanentError && (error.statusCode === 401 || error.statusCode === 403);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
