import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { request } from 'undici';
import { API_PREFIX } from '@cairn/shared';
import { buildApp, type App } from '../../src/app.ts';
import { openDatabase, rowsOf, type Database } from '../../src/db/database.ts';
import { clientLiveProgress } from '../../src/db/schema.ts';
import { liveProgressOf } from '../../src/live/live-progress.ts';
import { requestRun, revokeClientToken, rotateClientToken, updateClientSettings } from '../../src/services/clients.service.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { addUser, callApi, registerAgent, startHarness, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

/** A valid progress report for `runId`, mid-hashing. */
function progressReport(runId: string) {
  return {
    runId,
    phase: 'hashing',
    startedAt: new Date().toISOString(),
    filesScanned: 10,
    filesToCheck: 4,
    filesChecked: 1,
    filesCommitted: 0,
    bytesToHash: 4000,
    bytesHashed: 1000,
    bytesUploaded: 500,
    bytesPerSecond: 250,
    etaSeconds: 12,
  };
}

/** An open GET /events stream, read event by event. */
interface EventStream {
  status: number;
  /** The next event's name, or null once the server ended the stream. */
  next(): Promise<string | null>;
  close(): void;
}

async function openEvents(baseUrl: string, token: string | undefined): Promise<EventStream> {
  const abort = new AbortController();
  const response = await request(`${baseUrl}${API_PREFIX}/events`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  if (response.statusCode !== 200) {
    await response.body.text();
    return { status: response.statusCode, next: async () => null, close: () => undefined };
  }
  const decoder = new TextDecoder();
  const iterator = (response.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  let buffer = '';
  return {
    status: response.statusCode,
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const name = /^event: (.+)$/m.exec(block)?.[1];
          if (name !== undefined) return name;
          continue; // a keep-alive comment
        }
        const chunk = await iterator.next().catch(() => ({ done: true as const, value: undefined }));
        if (chunk.done) return null;
        buffer += decoder.decode(chunk.value, { stream: true });
      }
    },
    close: () => abort.abort(),
  };
}

describe.each(testDatabaseKinds())('live channel (%s)', (kind) => {
  let h: Harness;
  /** A second replica: its own app and connection pool on the same database. */
  let replica: { app: App; url: string; database: Database };
  let alice: Awaited<ReturnType<typeof addUser>>;

  beforeAll(async () => {
    h = await startHarness(kind);
    alice = await addUser(h, 'alice');
    const database = await openDatabase({ databaseUrl: (h.ctx.database as Database & { url: string }).url });
    const app = await buildApp({ ...h.ctx, database });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    replica = { app, database, url: `http://127.0.0.1:${address.port}` };
  });
  afterAll(async () => {
    await replica?.app.close();
    await replica?.database.close();
    await h?.close();
  });

  it('refuses a stream without a valid token with 401', async () => {
    const none = await openEvents(h.url, undefined);
    expect(none.status).toBe(401);
    none.close();
    const unknown = await openEvents(h.url, 'cairn_unknown');
    expect(unknown.status).toBe(401);
    unknown.close();
  });

  it('says hello, then carries "back up now" and a schedule edit made on another replica to the waiting agent', async () => {
    const reg = await registerAgent(h, alice, 'laptop');
    const stream = await openEvents(replica.url, reg.token);
    expect(stream.status).toBe(200);
    expect(await stream.next()).toBe('hello');

    // The request goes through the first replica's database pool; the stream is held by the second.
    await requestRun(h.ctx, reg.clientId, SYSTEM_ACTOR);
    expect(await stream.next()).toBe('run');
    const ping = await callApi<{ runRequested: boolean }>(h, 'POST', '/ping', { token: reg.token, json: {} });
    expect(ping.body.runRequested).toBe(true);

    await updateClientSettings(h.ctx, reg.clientId, { schedule: { cron: '0 4 * * *', timeZone: 'UTC', window: null } }, SYSTEM_ACTOR);
    expect(await stream.next()).toBe('config');
    stream.close();
  });

  it('does not tell an agent of another client', async () => {
    const mine = await registerAgent(h, alice, 'mine');
    const other = await registerAgent(h, alice, 'other');
    const stream = await openEvents(h.url, mine.token);
    expect(await stream.next()).toBe('hello');
    await requestRun(h.ctx, other.clientId, SYSTEM_ACTOR);
    await requestRun(h.ctx, mine.clientId, SYSTEM_ACTOR);
    // Notices arrive in commit order: had the other client's reached this stream, it would come first.
    expect(await stream.next()).toBe('run');
    await revokeClientToken(h.ctx, mine.clientId, SYSTEM_ACTOR);
    expect(await stream.next()).toBe('revoked');
    expect(await stream.next()).toBeNull();
  });

  it('closes the stream when the token is revoked or rotated, and the old token cannot reconnect', async () => {
    const reg = await registerAgent(h, alice, 'revoked');
    const stream = await openEvents(replica.url, reg.token);
    expect(await stream.next()).toBe('hello');
    await revokeClientToken(h.ctx, reg.clientId, SYSTEM_ACTOR);
    expect(await stream.next()).toBe('revoked');
    expect(await stream.next()).toBeNull();
    expect((await openEvents(replica.url, reg.token)).status).toBe(401);

    const rotated = await registerAgent(h, alice, 'rotated');
    const second = await openEvents(h.url, rotated.token);
    expect(await second.next()).toBe('hello');
    const { token } = await rotateClientToken(h.ctx, rotated.clientId, SYSTEM_ACTOR);
    expect(await second.next()).toBe('revoked');
    expect(await second.next()).toBeNull();
    expect((await openEvents(h.url, rotated.token)).status).toBe(401);
    const fresh = await openEvents(h.url, token);
    expect(await fresh.next()).toBe('hello');
    fresh.close();
  });

  it('holds many agent streams on one LISTEN connection per server process', async () => {
    const streams: EventStream[] = [];
    for (let i = 0; i < 6; i++) {
      const reg = await registerAgent(h, alice, `fleet-${i}`);
      const stream = await openEvents(i % 2 === 0 ? h.url : replica.url, reg.token);
      expect(await stream.next()).toBe('hello');
      streams.push(stream);
    }
    const rows = rowsOf(
      await h.ctx.database.db.execute(
        sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike 'listen%'`,
      ),
    );
    expect(rows[0]).toEqual({ n: 2 });
    for (const stream of streams) stream.close();
  });

  it('stores progress reports, refuses a bad one naming the field, and forgets them when the run finishes', async () => {
    const reg = await registerAgent(h, alice, 'progress');
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: { trigger: 'server' } });
    const report = progressReport(run.body.runId);
    expect((await callApi(h, 'POST', '/progress', { token: reg.token, json: report })).status).toBe(200);
    expect((await callApi(h, 'POST', '/progress', { token: reg.token, json: { ...report, filesChecked: 2 } })).status).toBe(200);
    const [row] = await h.ctx.database.db.select().from(clientLiveProgress).where(eq(clientLiveProgress.clientId, reg.clientId));
    expect(row?.progress).toMatchObject({ phase: 'hashing', filesChecked: 2, etaSeconds: 12 });

    const bad = await callApi<{ message: string }>(h, 'POST', '/progress', { token: reg.token, json: { ...report, phase: 'dancing' } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('phase');
    expect((await callApi(h, 'POST', '/progress', { json: report })).status).toBe(401);

    const finish = await callApi(h, 'POST', `/runs/${run.body.runId}/finish`, {
      token: reg.token,
      json: { status: 'succeeded', stats: { filesScanned: 10, filesChanged: 0, filesDeleted: 0, filesFailed: 0, bytesScanned: 0, bytesUploaded: 0 }, preCommands: [] },
    });
    expect(finish.status).toBe(200);
    expect(await h.ctx.database.db.select().from(clientLiveProgress).where(eq(clientLiveProgress.clientId, reg.clientId))).toEqual([]);
  });

  it('refuses a report that arrives after its run finished, so the finished run does not show as running', async () => {
    // The agent sends a report once a second without waiting for the run; one
    // still on the way when the run finishes used to bring the row back, and the
    // client page showed "Backup in progress" for a minute after the run ended.
    const reg = await registerAgent(h, alice, 'late-progress');
    const other = await registerAgent(h, alice, 'late-progress-other');
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: { trigger: 'server' } });
    const report = { ...progressReport(run.body.runId), phase: 'finishing' };
    expect((await callApi(h, 'POST', '/progress', { token: reg.token, json: report })).status).toBe(200);
    // Another client cannot report on this client's run.
    const foreign = await callApi<{ message: string }>(h, 'POST', '/progress', { token: other.token, json: report });
    expect(foreign.status).toBe(404);
    expect(foreign.body.message).toContain(run.body.runId);
    const finish = await callApi(h, 'POST', `/runs/${run.body.runId}/finish`, {
      token: reg.token,
      json: { status: 'succeeded', stats: { filesScanned: 1, filesChanged: 1, filesDeleted: 0, filesFailed: 0, bytesScanned: 10, bytesUploaded: 10 }, preCommands: [] },
    });
    expect(finish.status).toBe(200);

    const late = await callApi<{ message: string }>(h, 'POST', '/progress', { token: reg.token, json: report });
    expect(late.status).toBe(409);
    expect(late.body.message).toContain('already finished');
    expect(await h.ctx.database.db.select().from(clientLiveProgress).where(eq(clientLiveProgress.clientId, reg.clientId))).toEqual([]);
    const live = await liveProgressOf(h.ctx.database.db, reg.clientId);
    expect(live.running).toBe(false);
  });
});
