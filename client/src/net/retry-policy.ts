import { setTimeout as sleep } from 'node:timers/promises';
import { RetryableError } from './http-errors.ts';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 15_000 };

/** "Full jitter" exponential backoff: a uniform delay in [0, min(max, base * 2^attempt)). `random` in [0, 1). */
export function backoffDelayMs(attempt: number, policy: RetryPolicy, random: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(ceiling * random);
}

/** Runs `operation` again after a backoff while it throws RetryableError; anything else propagates at once. */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  onRetry?: (error: RetryableError, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!(error instanceof RetryableError) || attempt + 1 >= policy.attempts) throw error;
      const delayMs = backoffDelayMs(attempt, policy, Math.random());
      onRetry?.(error, attempt + 1, delayMs);
      await sleep(delayMs);
    }
  }
}
