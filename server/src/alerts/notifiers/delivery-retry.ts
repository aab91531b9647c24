/**
 * Bounded retries with exponential backoff for one delivery (decision 76).
 * Only failures that another try can fix are retried (the caller says which);
 * the last error is rethrown with the number of attempts made.
 */
export interface RetryPolicy {
  /** Tries in all, at least 1. */
  attempts: number;
  /** Wait before the second try; doubled for each further one, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 2000, maxDelayMs: 30_000 };

export class DeliveryError extends Error {
  readonly attempts: number;
  constructor(
    message: string,
    attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.attempts = attempts;
    this.name = 'DeliveryError';
  }
}

/** The wait before try `attempt + 1`: half fixed, half random, so many servers do not retry in step. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const full = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return full / 2 + Math.random() * (full / 2);
}

export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  onRetry: (error: unknown, n: number, delayMs: number) => void,
): Promise<{ value: T; attempts: number }> {
  for (let n = 1; ; n++) {
    try {
      return { value: await attempt(n), attempts: n };
    } catch (error) {
      if (n >= policy.attempts || !isRetryable(error)) {
        throw new DeliveryError(error instanceof Error ? error.message : String(error), n, { cause: error });
      }
      const delayMs = backoffDelay(policy, n);
      onRetry(error, n, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** What a failure says, without the error object (an SMTP error carries the commands it sent). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${typeof code === 'string' ? `${code} ` : ''}${error.message}${cause}`;
}
