/**
 * The compressibility half of the mass-change alert, through the real upload
 * API: the server adds up the raw and compressed sizes of the chunks a run
 * newly stores as it packs them (backup_runs.sample_*, decision 129), and a run whose new bytes stop compressing opens
 * `mass_change:incompressible`, which holds pruning until acknowledged
 * (decisions 79, 120, 121).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileVersion, RunStats } from '@cairn/shared';
import { and, eq } from 'drizzle-orm';
import { acknowledgeAlert, evaluateClientAlerts } from '../../src/alerts/alert-engine.ts';
import { alerts, backupRuns, users } from '../../src/db/schema.ts';
import { sweepRetention } from '../../src/services/retention.service.ts';
import { addUser, callApi, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const usual: RunStats = { filesScanned: 10_000, filesChanged: 20, filesDeleted: 0, filesFailed: 0, bytesScanned: 1000, bytesUploaded: 100 };
const KiB = 1024;

/** Text like a log or a CSV export, different for every seed: it deflates to well under half. */
function textFile(seed: string, bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${seed},${i},customer-${(i * 7919) % 1000},order placed,${(i * 31) % 997}.${i % 100} EUR\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

describe.each(testDatabaseKinds())('incompressible new content (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  it('a run of random bytes after compressible ones opens a mass-change alert that holds pruning; after the acknowledgement a normal run resolves it', async () => {
    const user = await addUser(h, 'encrypted-disk', { retentionVersions: 2 });
    const reg = await registerAgent(h, user, 'encrypted-disk-box');
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: reg.token, json });
    const versions = async (path: string) =>
      (await callApi<{ versions: FileVersion[] }>(h, 'GET', `/versions?path=${encodeURIComponent(path)}`, { token: reg.token })).body.versions;
    const clientAlerts = () => h.ctx.database.db.select().from(alerts).where(eq(alerts.clientId, reg.clientId));
    /** One run uploading `files` for the run (?runId=), committing them, and finishing with the usual file counts. */
    async function runWith(files: Record<string, Buffer>) {
      const runId = (await post<{ runId: string }>('/runs', {})).body.runId;
      const uploaded = await upload(h, reg.token, Object.values(files), `?runId=${runId}`);
      expect(uploaded.status).toBe(200);
      const changes = await post(`/runs/${runId}/changes`, { upserts: Object.entries(files).map(([p, data]) => fileUpsert(p, data)), deletes: [] });
      expect(changes.status).toBe(200);
      expect((await post(`/runs/${runId}/finish`, { status: 'succeeded', stats: usual, preCommands: [] })).status).toBe(200);
      const [row] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.id, runId));
      return row!;
    }
    const normalRun = (i: number) => {
      const files: Record<string, Buffer> = { '/data/doc.txt': textFile(`doc-${i}`, 24 * KiB) };
      for (const name of ['a', 'b', 'c', 'd']) files[`/data/${name}.csv`] = textFile(`${name}-${i}`, 40 * KiB);
      return runWith(files);
    };

    // Six runs of new text: all of their five files is measured, and it compresses to well under half.
    for (let i = 0; i < 6; i++) {
      const row = await normalRun(i);
      expect(row.sampleRawBytes).toBe(24 * KiB + 4 * 40 * KiB);
      expect(row.sampleCompressedBytes).toBeGreaterThan(0);
      expect(row.sampleCompressedBytes / row.sampleRawBytes).toBeLessThan(0.5);
    }
    expect(await versions('/data/doc.txt')).toHaveLength(2);
    expect(await clientAlerts()).toEqual([]);

    // Ransomware: the same files, and many more, rewritten as random bytes, which are stored raw.
    const encrypted: Record<string, Buffer> = { '/data/doc.txt': randomBytes(24 * KiB), '/data/big.db': randomBytes(2048 * KiB) };
    for (let i = 0; i < 70; i++) encrypted[`/data/photos/${i}.jpg`] = randomBytes(64 * KiB);
    const bad = await runWith(encrypted);
    expect(bad.sampleRawBytes).toBe(24 * KiB + 2048 * KiB + 70 * 64 * KiB);
    expect(bad.sampleCompressedBytes).toBe(bad.sampleRawBytes);
    const [alert] = await clientAlerts();
    expect(alert).toMatchObject({ type: 'mass_change', dedupeKey: 'mass_change:incompressible', state: 'open', severity: 'critical' });
    expect(alert!.observed).toMatch(/^new bytes compress to 100% of their size \(6\.\d+ MiB sampled\)$/);
    expect(alert!.reference).toMatch(/^median \d\d?% ± \d+% over 6 runs$/);

    // Bytes the server already holds are not sampled again: the same random parts for another run add nothing.
    const again = await runWith({ '/data/doc.txt': encrypted['/data/doc.txt']!, '/data/big.db': encrypted['/data/big.db']! });
    expect([again.bytesNew, again.sampleRawBytes, again.sampleCompressedBytes]).toEqual([0, 0, 0]);

    // More encrypted runs: retention keeps every version while the alert is open.
    await runWith({ '/data/doc.txt': randomBytes(24 * KiB) });
    await normalRun(100);
    expect((await sweepRetention(h.ctx)).ran).toBe(true);
    // The two good versions from before, and the three since (the re-sent identical bytes made none).
    expect(await versions('/data/doc.txt')).toHaveLength(5);
    // The last run was normal again, but nobody looked yet: the alert stays open (decision 79).
    await evaluateClientAlerts(h.ctx, reg.clientId);
    expect((await clientAlerts()).map((a) => [a.dedupeKey, a.state])).toEqual([['mass_change:incompressible', 'open']]);

    const [admin] = await h.ctx.database.db.select().from(users).where(eq(users.username, 'encrypted-disk'));
    expect(await acknowledgeAlert(h.ctx.database.db, alert!.id, { userId: admin!.id, name: admin!.username })).toBe(true);
    await normalRun(101);
    const after = await h.ctx.database.db.select().from(alerts).where(and(eq(alerts.clientId, reg.clientId), eq(alerts.id, alert!.id)));
    expect(after.map((a) => a.state)).toEqual(['resolved']);
    expect(await versions('/data/doc.txt')).toHaveLength(2);
  });

  it('a client whose new bytes never compressed (already compressed media) gets no alert from more of the same', async () => {
    const user = await addUser(h, 'photo-archive');
    const reg = await registerAgent(h, user, 'photo-archive-box');
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: reg.token, json });
    for (let run = 0; run < 7; run++) {
      const files: Record<string, Buffer> = {};
      // The last run brings 4.5 MiB, enough to be judged; the earlier ones 512 KiB each, enough for the baseline.
      for (let i = 0; i < (run === 6 ? 72 : 8); i++) files[`/photos/${run}-${i}.jpg`] = randomBytes(64 * KiB);
      const runId = (await post<{ runId: string }>('/runs', {})).body.runId;
      expect((await upload(h, reg.token, Object.values(files), `?runId=${runId}`)).status).toBe(200);
      await post(`/runs/${runId}/changes`, { upserts: Object.entries(files).map(([p, data]) => fileUpsert(p, data)), deletes: [] });
      expect((await post(`/runs/${runId}/finish`, { status: 'succeeded', stats: usual, preCommands: [] })).status).toBe(200);
    }
    const [last] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.clientId, reg.clientId)).orderBy(backupRuns.startedAt).offset(6);
    expect(last!.sampleRawBytes).toBe(72 * 64 * KiB);
    expect(await h.ctx.database.db.select().from(alerts).where(eq(alerts.clientId, reg.clientId))).toEqual([]);
  });
});
