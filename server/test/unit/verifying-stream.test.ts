import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { VerifyingStream } from '../../src/blob/verifying-stream.ts';
import { HashMismatchError, PayloadTooLargeError } from '../../src/errors.ts';

/**
 * Feeds `chunks` through a verifier one at a time, reading in flowing mode so
 * every chunk it lets out is seen at once, and records what came out (joined)
 * before the end or the error.
 */
async function run(chunks: string[], expectedSha256: string, maxBytes?: number, callerHashed?: boolean) {
  const verifier = new VerifyingStream(expectedSha256, { maxBytes, callerHashed });
  let received = '';
  verifier.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const source = Readable.from(
    (async function* () {
      for (const chunk of chunks) {
        yield Buffer.from(chunk);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })(),
  );
  try {
    await pipeline(source, verifier);
    return { received, error: undefined };
  } catch (error) {
    return { received, error };
  }
}

describe('VerifyingStream', () => {
  const chunks = ['first ', 'second ', 'last'];
  const sha = sha256Hex(chunks.join(''));

  it('passes every chunk through when the hash matches', async () => {
    expect(await run(chunks, sha)).toEqual({ received: chunks.join(''), error: undefined });
    expect(await run([], sha256Hex(''))).toEqual({ received: '', error: undefined });
  });

  it('never lets the last chunk of wrong bytes out', async () => {
    const cases: { name: string; input: string[] }[] = [
      { name: 'one byte changed at the end', input: ['first ', 'second ', 'lasT'] },
      { name: 'one byte changed at the start', input: ['First ', 'second ', 'last'] },
      { name: 'truncated', input: ['first ', 'second '] },
      { name: 'all in one chunk', input: ['first second lasT'] },
      { name: 'empty', input: [] },
    ];
    for (const { name, input } of cases) {
      const { received, error } = await run(input, sha);
      // Everything before the last chunk streams on (nothing is buffered whole); the last never comes.
      expect(received, name).toBe(input.slice(0, -1).join(''));
      expect(error, name).toBeInstanceOf(HashMismatchError);
    }
  });

  it('fails as soon as more than maxBytes arrive', async () => {
    const { received, error } = await run(['12345', '67890', 'more'], sha256Hex('1234567890more'), 7);
    expect(received).toBe('');
    expect(error).toBeInstanceOf(PayloadTooLargeError);
  });

  it('fails with the error its reader chooses', async () => {
    const verifier = new VerifyingStream(sha, { failure: (problem) => new Error(`damaged: ${problem.kind}`) });
    Readable.from([Buffer.from('other bytes')]).pipe(verifier);
    await expect(verifier.toArray()).rejects.toThrow('damaged: mismatch');
  });

  it('with callerHashed, checks only the size: the caller hashed these bytes in memory (decision 196)', async () => {
    expect(await run(chunks, sha256Hex('other bytes'), undefined, true)).toEqual({ received: chunks.join(''), error: undefined });
    const tooLarge = await run(chunks, sha, 8, true);
    expect(tooLarge.error).toBeInstanceOf(PayloadTooLargeError);
  });
});
