import { describe, expect, it } from 'vitest';
import { ReadWriteLock } from '../../src/db/advisory-locks.ts';

/** Lets every already-resolved promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ReadWriteLock (the in-process content lock used with PGlite)', () => {
  it('lets readers share and keeps a writer waiting until the last reader leaves', async () => {
    const lock = new ReadWriteLock();
    const releaseA = await lock.read();
    const releaseB = await lock.read();
    let writing = false;
    const writer = lock.write().then((release) => {
      writing = true;
      return release;
    });
    await settle();
    expect(writing).toBe(false);
    expect(lock.waiting).toBe(1);
    releaseA();
    await settle();
    expect(writing).toBe(false);
    releaseB();
    (await writer)();
    expect(writing).toBe(true);
    expect(lock.waiting).toBe(0);
  });

  it('does not let a reader overtake a waiting writer, and releases are idempotent', async () => {
    const lock = new ReadWriteLock();
    const order: string[] = [];
    const releaseFirst = await lock.read();
    const writer = lock.write().then((release) => {
      order.push('writer');
      return release;
    });
    const reader = lock.read().then((release) => {
      order.push('reader');
      return release;
    });
    await settle();
    expect(order).toEqual([]);
    releaseFirst();
    releaseFirst();
    const releaseWriter = await writer;
    await settle();
    expect(order).toEqual(['writer']);
    releaseWriter();
    (await reader)();
    expect(order).toEqual(['writer', 'reader']);
  });
});
