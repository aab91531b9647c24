import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { QUEUED_UPLOAD_BYTES } from '../../src/services/content-store.service.ts';
import { byteBudgetFor } from '../../src/storage/byte-budget.ts';
import { PACK_TARGET_BYTES } from '../../src/storage/pack-writer.ts';
import { addUser, download, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const PART_BYTES = 256 * 1024;
/** Each request brings as much as its open pack and the whole queue budget hold together (48 parts, 12 MiB). */
const PARTS_PER_REQUEST = (PACK_TARGET_BYTES + QUEUED_UPLOAD_BYTES) / PART_BYTES;
const REQUESTS = 3;

/**
 * Decision 190: the bytes upload requests have read but not yet put through
 * their pack writers come out of one budget per server, so the server's
 * memory does not grow with the number of agents uploading at once. The
 * store's puts are held back (the real disk store behind a gate), so every
 * request's pack writer stalls and its bytes pile up in the queue: together
 * they must stop at the budget, and once the puts go through every part is
 * stored intact.
 */
describe.each(testDatabaseKinds())('the upload queue budget, shared by all requests (%s)', (kind) => {
  let harness: Harness;
  let openGate: () => void = () => {};
  beforeEach(async () => {
    harness = await startHarness(kind);
  });
  afterEach(async () => {
    // A failed assertion must not leave the uploads (and the server's close) waiting on the gate.
    openGate();
    await harness.close();
  });

  it('holds at most QUEUED_UPLOAD_BYTES for three requests together, then stores every part', async () => {
    const budget = byteBudgetFor(harness.ctx, QUEUED_UPLOAD_BYTES);
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let heldPuts = 0;
    const put = harness.blobs.put.bind(harness.blobs);
    harness.blobs.put = async (...args: Parameters<typeof put>) => {
      heldPuts += 1;
      await gate;
      return put(...args);
    };

    const user = await addUser(harness, 'budget');
    const agents = await Promise.all(Array.from({ length: REQUESTS }, (_, i) => registerAgent(harness, user, `budget-${i}`)));
    // Random bytes: zstd cannot shrink them, so each open pack fills to PACK_TARGET_BYTES.
    const requests = agents.map(() => Array.from({ length: PARTS_PER_REQUEST }, () => randomBytes(PART_BYTES)));
    const uploads = agents.map((agent, i) => upload(harness, agent.token, requests[i]!));

    // The queue fills up to the budget (less than one part short of it) and stops there.
    let peak = 0;
    const sample = () => {
      peak = Math.max(peak, budget.held);
      return budget.held >= QUEUED_UPLOAD_BYTES - PART_BYTES;
    };
    // Polled, not timed: the wait fails only if the queue never fills (the requests' bytes were not counted here).
    await vi.waitUntil(sample, { timeout: 60_000, interval: 10 });
    for (let i = 0; i < 20; i += 1) {
      sample();
      await sleep(10);
    }
    expect(budget.held).toBeGreaterThanOrEqual(QUEUED_UPLOAD_BYTES - PART_BYTES);
    expect(peak).toBeLessThanOrEqual(QUEUED_UPLOAD_BYTES);
    // The writers are stalled on their first packs; none got further.
    expect(heldPuts).toBeGreaterThanOrEqual(1);
    expect(heldPuts).toBeLessThanOrEqual(REQUESTS);

    openGate();
    const results = await Promise.all(uploads);
    for (const [i, result] of results.entries()) {
      expect(result.status).toBe(200);
      expect(result.body.results.map((r) => r.status)).toEqual(requests[i]!.map(() => 'stored'));
    }
    expect(budget.held).toBe(0);
    const last = requests[1]![PARTS_PER_REQUEST - 1]!;
    const back = await download(harness, agents[1]!.token, sha256Hex(last));
    expect(back.status).toBe(200);
    expect(back.bytes.equals(last)).toBe(true);
  });
});
