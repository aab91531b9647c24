import { describe, expect, it } from 'vitest';
import { LIMITS } from '@cairn/shared';
import { commandFailed, runCommand } from '../../src/backup/command-runner.ts';
import { decideRemoteCommand } from '../../src/backup/remote-command-policy.ts';
import { backoffDelayMs, withRetry } from '../../src/net/retry-policy.ts';
import { PermanentError, RetryableError } from '../../src/net/http-errors.ts';

describe('runCommand', () => {
  it('captures output and the exit code', async () => {
    const result = await runCommand({ command: 'echo out; echo err >&2; exit 3', timeoutSeconds: 30, source: 'local' });
    expect(result).toMatchObject({ exitCode: 3, timedOut: false, source: 'local' });
    expect(result.output).toContain('out');
    expect(result.output).toContain('err');
    expect(commandFailed(result)).toBe(true);
  });

  it('spells a NUL byte in the output visibly, so even an old server can store it', async () => {
    const result = await runCommand({ command: "printf 'a\\0b'; printf '\\0\\0' >&2", timeoutSeconds: 30, source: 'local' });
    expect(result.exitCode).toBe(0);
    expect(result.output).toBe('a\u2400b\u2400\u2400');
  });

  it('stays within the protocol\'s output limit when the output is nothing but NUL bytes', async () => {
    const result = await runCommand({ command: 'head -c 1000000 /dev/zero', timeoutSeconds: 30, source: 'local' });
    expect(result.output).not.toContain('\0');
    expect(result.output.length).toBeLessThanOrEqual(LIMITS.commandOutputBytes * 2);
    expect(result.output).toContain('[output truncated');
  });

  it('caps a flood of output', async () => {
    const result = await runCommand({ command: 'yes cairn | head -c 1000000', timeoutSeconds: 30, source: 'server' });
    expect(result.exitCode).toBe(0);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(LIMITS.commandOutputBytes + 200);
    expect(result.output).toContain('[output truncated');
  });

  it('kills a hanging command and its whole process group at the timeout', async () => {
    const result = await runCommand({ command: 'sleep 300 & sleep 300; echo never', timeoutSeconds: 1, source: 'server' });
    expect(result).toMatchObject({ timedOut: true, exitCode: null });
    expect(result.output).not.toContain('never');
    expect(result.output).toContain('timeout');
  });
});

describe('decideRemoteCommand', () => {
  it.each<[string, boolean, string[] | undefined, boolean]>([
    ['echo hi', true, undefined, true],
    ['echo hi', false, undefined, false],
    ['echo hi', false, ['echo hi'], false],
    ['echo hi', true, ['echo hi'], true],
    [' echo hi ', true, ['echo hi'], true],
    ['echo hi; rm -rf /', true, ['echo hi'], false],
    ['echo hi', true, [], false],
  ])('%j allowed=%s allowlist=%j', (command, allow, allowlist, expected) => {
    expect(decideRemoteCommand(command, allow, allowlist).allowed).toBe(expected);
  });
});

describe('retry policy', () => {
  it.each<[number, number, number]>([
    [0, 0.5, 250],
    [1, 0.5, 500],
    [3, 0.999, 3996],
    [10, 0.5, 7500],
  ])('attempt %i with random %f waits %i ms', (attempt, random, expected) => {
    expect(backoffDelayMs(attempt, { attempts: 5, baseDelayMs: 500, maxDelayMs: 15_000 }, random)).toBe(expected);
  });

  it('retries retryable errors and stops at permanent ones', async () => {
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls += 1;
        if (calls < 3) throw new RetryableError('flaky');
        return 'ok';
      },
      { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 },
    );
    expect([value, calls]).toEqual(['ok', 3]);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls += 1;
          throw new PermanentError('no', 400);
        },
        { attempts: 5, baseDelayMs: 1, maxDelayMs: 2 },
      ),
    ).rejects.toBeInstanceOf(PermanentError);
    expect(calls).toBe(1);
  });
});
