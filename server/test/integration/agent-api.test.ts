import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asc, eq } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import { auditLog, clients } from '../../src/db/schema.ts';
import { createClient, requestRun, revokeClientToken, rotateClientToken, updateClientSettings } from '../../src/services/clients.service.ts';
import { setUserDisabled, SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { getRunOfClient, listClientLogs } from '../../src/services/backup-repository.ts';
import { addUser, callApi, download, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

describe.each(testDatabaseKinds())('agent API v1 (%s)', (kind) => {
  let h: Harness;
  let alice: Awaited<ReturnType<typeof addUser>>;
  let bob: Awaited<ReturnType<typeof addUser>>;

  beforeAll(async () => {
    h = await startHarness(kind, { MAX_UPLOAD_PARTS: '3', MAX_UPLOAD_PART_BYTES: '4096', MAX_JSON_BODY_BYTES: '65536' });
    alice = await addUser(h, 'alice');
    bob = await addUser(h, 'bob');
  });
  afterAll(() => h?.close());

  describe('register', () => {
    it('returns a client id and a token that authenticates, storing only its hash', async () => {
      const reg = await registerAgent(h, alice, 'laptop');
      expect(reg.token).toMatch(/^cairn_[A-Za-z0-9_-]{43}$/);
      expect(reg.dashboardUrl).toContain(reg.clientId);
      const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, reg.clientId));
      expect(row?.tokenHash).toBe(sha256Hex(reg.token));
      expect(JSON.stringify(row)).not.toContain(reg.token);
      const config = await callApi(h, 'GET', '/config', { token: reg.token });
      expect(config.status).toBe(200);
      expect(config.body).toMatchObject({ clientId: reg.clientId, name: 'laptop', monitoredPaths: [], preCommands: [] });
    });

    it('re-registering a client name re-issues that client token and the old one stops working', async () => {
      const first = await registerAgent(h, alice, 'desktop');
      const second = await registerAgent(h, alice, 'desktop');
      expect(second.clientId).toBe(first.clientId);
      expect(second.token).not.toBe(first.token);
      expect((await callApi(h, 'GET', '/config', { token: first.token })).status).toBe(401);
      expect((await callApi(h, 'GET', '/config', { token: second.token })).status).toBe(200);
    });

    it('answers unknown user, wrong password and disabled user with the same 401', async () => {
      const carol = await addUser(h, 'carol');
      await setUserDisabled(h.ctx, carol.id, true, SYSTEM_ACTOR);
      const attempts = [
        { username: 'nobody', password: 'whatever-pw' },
        { username: 'alice', password: 'wrong-password' },
        { username: 'carol', password: carol.password },
      ];
      const messages = new Set<string>();
      for (const creds of attempts) {
        const result = await callApi<{ message: string }>(h, 'POST', '/register', {
          json: { ...creds, clientName: 'x', hostname: 'x' },
        });
        expect(result.status).toBe(401);
        messages.add(result.body.message);
      }
      expect([...messages]).toEqual(['invalid username or password']);
    });

    it('writes the registration to the audit log without the token', async () => {
      const reg = await registerAgent(h, bob, 'audited');
      const entries = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.targetId, reg.clientId));
      expect(entries.map((e) => e.action)).toContain('client.register');
      expect(JSON.stringify(entries)).not.toContain(reg.token);
    });
  });

  describe('authentication', () => {
    it('refuses a missing, unknown or revoked token with 401', async () => {
      const reg = await registerAgent(h, alice, 'revoked-one');
      expect((await callApi(h, 'POST', '/ping', { json: {} })).status).toBe(401);
      expect((await callApi(h, 'POST', '/ping', { token: 'cairn_unknown', json: {} })).status).toBe(401);
      expect((await callApi(h, 'POST', '/ping', { token: reg.token, json: {} })).status).toBe(200);
      await revokeClientToken(h.ctx, reg.clientId, SYSTEM_ACTOR);
      const revoked = await callApi<{ message: string }>(h, 'POST', '/ping', { token: reg.token, json: {} });
      expect(revoked.status).toBe(401);
      expect(revoked.body.message).toMatch(/unknown or revoked/);
    });

    it("refuses the tokens of a disabled user's agents", async () => {
      const dave = await addUser(h, 'dave');
      const reg = await registerAgent(h, dave, 'box');
      await setUserDisabled(h.ctx, dave.id, true, SYSTEM_ACTOR);
      expect((await callApi(h, 'GET', '/config', { token: reg.token })).status).toBe(401);
    });
  });

  describe('ping', () => {
    it('records the heartbeat and reports a requested run until a run starts', async () => {
      const reg = await registerAgent(h, alice, 'pinger');
      const first = await callApi<{ runRequested: boolean; serverTime: string; restoreJobsPending: boolean }>(h, 'POST', '/ping', {
        token: reg.token,
        json: { agentVersion: '1.2.3', state: 'idle' },
      });
      expect(first.status).toBe(200);
      expect(first.body.runRequested).toBe(false);
      expect(first.body.restoreJobsPending).toBe(false);
      expect(Number.isNaN(Date.parse(first.body.serverTime))).toBe(false);
      const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, reg.clientId));
      expect(row?.lastPingAt).toBeInstanceOf(Date);
      expect(row).toMatchObject({ agentVersion: '1.2.3', agentState: 'idle' });

      await requestRun(h.ctx, reg.clientId, SYSTEM_ACTOR);
      expect((await callApi<{ runRequested: boolean }>(h, 'POST', '/ping', { token: reg.token, json: {} })).body.runRequested).toBe(true);
      expect((await callApi(h, 'POST', '/runs', { token: reg.token, json: { trigger: 'server' } })).status).toBe(200);
      expect((await callApi<{ runRequested: boolean }>(h, 'POST', '/ping', { token: reg.token, json: {} })).body.runRequested).toBe(false);
    });
  });

  describe('bad input', () => {
    it('answers 400 naming the field', async () => {
      const reg = await registerAgent(h, alice, 'bad-input');
      const badHash = await callApi<{ message: string }>(h, 'POST', '/contents/missing', { token: reg.token, json: { hashes: ['nothex'] } });
      expect(badHash.status).toBe(400);
      expect(badHash.body.message).toContain('hashes/0');

      const noName = await callApi<{ message: string }>(h, 'POST', '/register', { json: { username: 'alice', password: 'x', hostname: 'h' } });
      expect(noName.status).toBe(400);
      expect(noName.body.message).toContain('clientName');

      const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
      const badPath = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, {
        token: reg.token,
        json: { upserts: [{ path: 'relative/file', kind: 'file', sha256: null, size: 0, mtimeMs: 0, mode: 0 }], deletes: [] },
      });
      expect(badPath.status).toBe(400);
      expect(badPath.body.message).toContain('upserts/0/path');

      const badRunId = await callApi<{ message: string }>(h, 'POST', '/runs/not-a-uuid/changes', { token: reg.token, json: { upserts: [], deletes: [] } });
      expect(badRunId.status).toBe(400);
      expect(badRunId.body.message).toContain('runId');

      const badPart = await upload<{ message: string }>(h, reg.token, [{ name: 'not-a-hash', data: Buffer.from('x') }]);
      expect(badPart.status).toBe(400);
      expect(badPart.body.message).toContain('not-a-hash');

      const badLimit = await callApi<{ message: string }>(h, 'GET', '/files?limit=0', { token: reg.token });
      expect(badLimit.status).toBe(400);
      expect(badLimit.body.message).toContain('limit');
    });

    it("answers 404 for another client's run and another user's content", async () => {
      const mine = await registerAgent(h, alice, 'mine');
      const theirs = await registerAgent(h, bob, 'theirs');
      const sameUserOther = await registerAgent(h, alice, 'mine-too');
      const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: theirs.token, json: {} });
      for (const token of [mine.token, sameUserOther.token]) {
        expect((await callApi(h, 'POST', `/runs/${run.body.runId}/changes`, { token, json: { upserts: [], deletes: [] } })).status).toBe(404);
        expect(
          (
            await callApi(h, 'POST', `/runs/${run.body.runId}/finish`, {
              token,
              json: { status: 'succeeded', stats: zeroStats(), preCommands: [] },
            })
          ).status,
        ).toBe(404);
      }
      expect((await upload(h, mine.token, [Buffer.from('x')], `?runId=${run.body.runId}`)).status).toBe(404);
      const logs = await callApi(h, 'POST', '/logs', {
        token: mine.token,
        json: { entries: [{ at: new Date().toISOString(), level: 'info', message: 'hi', runId: run.body.runId }] },
      });
      expect(logs.status).toBe(404);

      const secret = Buffer.from("bob's secret bytes");
      expect((await upload(h, theirs.token, [secret])).status).toBe(200);
      expect((await download(h, theirs.token, sha256Hex(secret))).status).toBe(200);
      expect((await download(h, mine.token, sha256Hex(secret))).status).toBe(404);
    });

    it('answers 413 over the part count, the part size and the JSON body size, and for text fields', async () => {
      const reg = await registerAgent(h, alice, 'limits');
      const tooMany = await upload(h, reg.token, [Buffer.from('1'), Buffer.from('2'), Buffer.from('3'), Buffer.from('4')]);
      expect(tooMany.status).toBe(413);
      const tooBig = await upload(h, reg.token, [Buffer.alloc(4097, 7)]);
      expect(tooBig.status).toBe(413);
      expect(await h.blobs.stat(sha256Hex(Buffer.alloc(4097, 7)))).toBeNull();
      const exactly = await upload(h, reg.token, [Buffer.alloc(4096, 7)]);
      expect(exactly.status).toBe(200);
      const hugeJson = await callApi(h, 'POST', '/contents/missing', { token: reg.token, json: { hashes: Array(2000).fill('a'.repeat(64)) } });
      expect(hugeJson.status).toBe(413);
      const boundary = 'b0undary';
      const field = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}--\r\n`);
      const withField = await callApi(h, 'POST', '/contents', {
        token: reg.token,
        body: field,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      expect(withField.status).toBe(413);
    });
  });

  describe('text the database cannot hold (NUL, unpaired surrogates)', () => {
    it('stores captured output, run errors and log lines with such characters spelled visibly, and the run finishes', async () => {
      const reg = await registerAgent(h, alice, 'nul-output');
      const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
      const finish = await callApi<{ status: string }>(h, 'POST', `/runs/${run.body.runId}/finish`, {
        token: reg.token,
        json: {
          status: 'partial',
          stats: zeroStats(),
          preCommands: [{ command: "printf 'a\\0b'\u0000", source: 'local', exitCode: 0, durationMs: 1, timedOut: false, output: 'a\u0000b \ud800 \udc00 \u{1f600}' }],
          error: 'failed\u0000 here',
        },
      });
      expect(finish.status).toBe(200);
      expect(finish.body.status).toBe('partial');
      const stored = await getRunOfClient(h.ctx.database.db, reg.clientId, run.body.runId);
      expect(stored.status).toBe('partial');
      expect(stored.preCommands[0]?.output).toBe('a\u2400b \ufffd \ufffd \u{1f600}');
      expect(stored.preCommands[0]?.command).toBe("printf 'a\\0b'\u2400");
      expect(stored.error).toBe('failed\u2400 here');

      const logs = await callApi(h, 'POST', '/logs', {
        token: reg.token,
        json: { entries: [{ at: new Date().toISOString(), level: 'warn', message: 'odd \u0000 line \udbff', runId: run.body.runId }] },
      });
      expect(logs.status).toBe(200);
      expect((await listClientLogs(h.ctx.database.db, reg.clientId)).map((line) => line.message)).toEqual(['odd \u2400 line \ufffd']);
    });

    it('refuses them in names, hostnames, versions, symlink targets and paths with 400 naming the field, storing nothing', async () => {
      const register = (fields: Record<string, string>) =>
        callApi<{ message: string }>(h, 'POST', '/register', {
          json: { username: 'alice', password: alice.password, clientName: 'ok-name', hostname: 'ok.host', ...fields },
        });
      for (const [field, value] of [
        ['clientName', 'nul\u0000name'],
        ['clientName', 'lone\ud800'],
        ['hostname', 'host\u0000'],
        ['agentVersion', '1.0\udc00'],
      ] as const) {
        const result = await register({ [field]: value });
        expect(result.status, `${field} ${JSON.stringify(value)}`).toBe(400);
        expect(result.body.message).toContain(`body/${field}`);
        expect(result.body.message).toMatch(/NUL|surrogate/);
      }
      const names = (await h.ctx.database.db.select({ name: clients.name }).from(clients)).map((row) => row.name);
      expect(names).not.toContain('ok-name');

      const reg = await registerAgent(h, alice, 'nul-names');
      const ping = await callApi<{ message: string }>(h, 'POST', '/ping', { token: reg.token, json: { hostname: 'h\u0000' } });
      expect(ping.status).toBe(400);
      expect(ping.body.message).toContain('body/hostname');

      const target = Buffer.from('target');
      await upload(h, reg.token, [target]);
      const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
      const changes = (json: unknown) => callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, { token: reg.token, json });
      const link = { path: '/srv/link', kind: 'symlink', sha256: null, size: 0, mtimeMs: 0, mode: 0o120777, linkTarget: 'x\u0000y' };
      const cases: [unknown, string][] = [
        [{ upserts: [link], deletes: [] }, 'body/upserts/0/linkTarget'],
        [{ upserts: [{ ...link, linkTarget: '\udfff' }], deletes: [] }, 'body/upserts/0/linkTarget'],
        [{ upserts: [fileUpsert('/srv/a\u0000b', target)], deletes: [] }, 'body/upserts/0/path'],
        [{ upserts: [fileUpsert('/srv/a\ud83d', target)], deletes: [] }, 'body/upserts/0/path'],
        [{ upserts: [], deletes: ['/srv/\u0000'] }, 'body/deletes/0'],
      ];
      for (const [json, field] of cases) {
        const result = await changes(json);
        expect(result.status, JSON.stringify(json)).toBe(400);
        expect(result.body.message).toContain(field);
      }
      // Paired surrogates (any Unicode) and byte escapes (decision 41) are ordinary text.
      const fine = await changes({ upserts: [{ ...link, linkTarget: '../\u{1f600}' }, fileUpsert('/srv/\u{1f600}\u{10ffe9}', target)], deletes: [] });
      expect(fine.status).toBe(200);
      const files = await callApi<{ files: { path: string }[] }>(h, 'GET', '/files', { token: reg.token });
      expect(files.body.files.map((file) => file.path)).toEqual(['/srv/link', '/srv/\u{1f600}\u{10ffe9}']);
    });
  });

  it('answers numbers its columns cannot hold with 400 naming the field', async () => {
    const reg = await registerAgent(h, alice, 'numbers');
    const data = Buffer.from('numbers');
    await upload(h, reg.token, [data]);
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
    const changes = [
      [{ ...fileUpsert('/srv/n', data), mode: 2 ** 31 }, 'body/upserts/0/mode'],
      [{ ...fileUpsert('/srv/n', data), size: 1e20 }, 'body/upserts/0/size'],
    ] as const;
    for (const [upsert, field] of changes) {
      const result = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, { token: reg.token, json: { upserts: [upsert], deletes: [] } });
      expect(result.status, field).toBe(400);
      expect(result.body.message).toContain(field);
    }
    for (const [stat, value] of [
      ['filesScanned', 2 ** 31],
      ['bytesScanned', 1e20],
    ] as const) {
      const result = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/finish`, {
        token: reg.token,
        json: { status: 'succeeded', stats: { ...zeroStats(), [stat]: value }, preCommands: [] },
      });
      expect(result.status, stat).toBe(400);
      expect(result.body.message).toContain(`body/stats/${stat}`);
    }
  });

  describe('paths on the wire are canonical', () => {
    it('refuses .. and . segments, empty segments, a trailing slash and the root with 400 naming the path, rewriting nothing', async () => {
      const reg = await registerAgent(h, alice, 'canonical');
      const data = Buffer.from('canonical bytes');
      await upload(h, reg.token, [data]);
      const run = await callApi<{ runId: string }>(h, 'POST', `/runs`, { token: reg.token, json: {} });
      for (const bad of ['/home/u/../../etc/passwd', '/home/./u', '/home//u', '/home/u/', '//home', '/..', '/.', '/']) {
        const upsert = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, {
          token: reg.token,
          json: { upserts: [fileUpsert(bad, data)], deletes: [] },
        });
        expect(upsert.status, bad).toBe(400);
        expect(upsert.body.message).toContain('body/upserts/0/path');
        const del = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, {
          token: reg.token,
          json: { upserts: [], deletes: [bad] },
        });
        expect(del.status, bad).toBe(400);
        expect(del.body.message).toContain('body/deletes/0');
      }
      const files = await callApi<{ files: unknown[] }>(h, 'GET', '/files', { token: reg.token });
      expect(files.body.files).toEqual([]);
      // Names that merely contain dots are ordinary.
      const dotted = await callApi(h, 'POST', `/runs/${run.body.runId}/changes`, {
        token: reg.token,
        json: { upserts: [fileUpsert('/home/.../..a/.b./...', data)], deletes: [] },
      });
      expect(dotted.status).toBe(200);
    });
  });

  it("refuses a version whose size is not its content's size, naming the path", async () => {
    const reg = await registerAgent(h, alice, 'sizes');
    const data = Buffer.from('eighteen bytes !!!');
    expect(data.length).toBe(18);
    await upload(h, reg.token, [data]);
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
    const lying = await callApi<{ message: string }>(h, 'POST', `/runs/${run.body.runId}/changes`, {
      token: reg.token,
      json: { upserts: [fileUpsert('/srv/ok.txt', data), { ...fileUpsert('/srv/big.txt', data), size: 1_000_000 }], deletes: [] },
    });
    expect(lying.status).toBe(400);
    expect(lying.body.message).toContain('upserts[1].size');
    expect(lying.body.message).toContain('/srv/big.txt');
    expect(lying.body.message).toContain('18');
    expect((await callApi<{ files: unknown[] }>(h, 'GET', '/files', { token: reg.token })).body.files).toEqual([]);
    const honest = await callApi(h, 'POST', `/runs/${run.body.runId}/changes`, {
      token: reg.token,
      json: { upserts: [fileUpsert('/srv/ok.txt', data), fileUpsert('/srv/big.txt', data)], deletes: [] },
    });
    expect(honest.status).toBe(200);
  });

  it('validates every query and path parameter like the body: 400 naming it', async () => {
    const reg = await registerAgent(h, alice, 'queries');
    const cases: [string, string][] = [
      ['/files?after=%00', 'after'],
      ['/files?after=relative', 'after'],
      ['/files?prefix=%00', 'prefix'],
      ['/files?prefix=/a/../b', 'prefix'],
      ['/files?asOf=yesterday', 'asOf'],
      ['/files?asOf=2016-12-31T23:59:60Z', 'asOf'],
      ['/files?limit=ten', 'limit'],
      ['/files?after=/a&after=/b', 'after'],
      ['/versions', 'path'],
      ['/versions?path=%00', 'path'],
      ['/versions?path=/srv/', 'path'],
      ['/contents/NOT-A-HASH', 'sha256'],
      ['/runs/%00/finish', 'runId'],
    ];
    for (const [route, name] of cases) {
      const method = route.startsWith('/runs') ? 'POST' : 'GET';
      const json = method === 'POST' ? { status: 'succeeded', stats: zeroStats(), preCommands: [] } : undefined;
      const result = await callApi<{ message: string }>(h, method, route, { token: reg.token, ...(json && { json }) });
      expect(result.status, route).toBe(400);
      expect(result.body.message, route).toContain(name);
    }
    const upload0 = await upload<{ message: string }>(h, reg.token, [Buffer.from('q')], '?runId=%00');
    expect(upload0.status).toBe(400);
    expect(upload0.body.message).toContain('runId');
    expect((await callApi(h, 'GET', '/files?prefix=/&after=/srv/a', { token: reg.token })).status).toBe(200);
  });

  it('serves clients made, re-keyed and configured through the services the dashboard uses', async () => {
    const admin = { userId: alice.id, name: 'alice' };
    const made = await createClient(h.ctx, alice.id, { name: 'by-hand' }, admin);
    expect((await callApi(h, 'GET', '/config', { token: made.token })).status).toBe(200);
    const rotated = await rotateClientToken(h.ctx, made.clientId, admin);
    expect((await callApi(h, 'GET', '/config', { token: made.token })).status).toBe(401);
    await updateClientSettings(
      h.ctx,
      made.clientId,
      { monitoredPaths: ['/srv'], preCommands: [{ command: 'pg_dump app > /srv/app.sql', timeoutSeconds: 600 }], backupIntervalSeconds: 900 },
      admin,
    );
    const config = await callApi(h, 'GET', '/config', { token: rotated.token });
    expect(config.body).toMatchObject({
      clientId: made.clientId,
      monitoredPaths: ['/srv'],
      preCommands: [{ command: 'pg_dump app > /srv/app.sql', timeoutSeconds: 600 }],
      backupIntervalSeconds: 900,
    });
    const audit = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.targetId, made.clientId)).orderBy(asc(auditLog.id));
    expect(audit.map((e) => e.action)).toEqual(['client.create', 'client.token.rotate', 'client.precommands.update']);
    expect(audit[2]?.details).toMatchObject({ preCommands: { before: [], after: [{ command: 'pg_dump app > /srv/app.sql', timeoutSeconds: 600 }] } });
    expect(JSON.stringify(audit)).not.toContain(rotated.token);
  });

  it('stores logs', async () => {
    const reg = await registerAgent(h, alice, 'logger');
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} });
    const result = await callApi(h, 'POST', '/logs', {
      token: reg.token,
      json: {
        entries: [
          { at: new Date().toISOString(), level: 'warn', message: 'disk almost full' },
          { at: new Date().toISOString(), level: 'info', message: 'run started', runId: run.body.runId },
        ],
      },
    });
    expect(result).toMatchObject({ status: 200, body: { ok: true } });
  });

  it('publishes every agent route with its schemas in the OpenAPI document', async () => {
    const response = await h.app.inject({ method: 'GET', url: '/docs/json' });
    const doc = response.json() as { paths: Record<string, Record<string, { requestBody?: unknown; responses?: Record<string, unknown> }>> };
    const expected: [string, string][] = [
      ['/api/v1/register', 'post'],
      ['/api/v1/ping', 'post'],
      ['/api/v1/config', 'get'],
      ['/api/v1/runs', 'post'],
      ['/api/v1/runs/{runId}/changes', 'post'],
      ['/api/v1/runs/{runId}/finish', 'post'],
      ['/api/v1/contents/missing', 'post'],
      ['/api/v1/contents', 'post'],
      ['/api/v1/contents/{sha256}', 'get'],
      ['/api/v1/files', 'get'],
      ['/api/v1/versions', 'get'],
      ['/api/v1/logs', 'post'],
    ];
    for (const [route, method] of expected) {
      const operation = doc.paths[route]?.[method];
      expect(operation, `${method} ${route}`).toBeDefined();
      expect(operation?.responses?.['200'], `${method} ${route} 200`).toBeDefined();
    }
    expect(doc.paths['/api/v1/runs/{runId}/changes']?.post?.requestBody).toBeDefined();
  });

  it('rate-limits registration per client address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40 && !statuses.includes(429); i++) {
      const result = await callApi(h, 'POST', '/register', { json: { username: 'nobody', password: 'x', clientName: 'x', hostname: 'x' } });
      statuses.push(result.status);
    }
    expect(statuses).toContain(429);
  });
});

function zeroStats() {
  return { filesScanned: 0, filesChanged: 0, filesDeleted: 0, filesFailed: 0, bytesScanned: 0, bytesUploaded: 0 };
}
