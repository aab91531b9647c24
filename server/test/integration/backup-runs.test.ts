import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count, eq } from 'drizzle-orm';
import { sha256Hex, type FilesPage, type FileVersion, type RunSummary } from '@cairn/shared';
import { clients, fileVersions } from '../../src/db/schema.ts';
import { listRuns } from '../../src/services/backup-repository.ts';
import { addUser, callApi, download, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const stats = { filesScanned: 3, filesChanged: 3, filesDeleted: 0, filesFailed: 0, bytesScanned: 30, bytesUploaded: 30 };

describe.each(testDatabaseKinds())('backup runs and the temporal tree (%s)', (kind) => {
  let h: Harness;
  let token: string;
  let clientId: string;

  beforeAll(async () => {
    h = await startHarness(kind);
    const user = await addUser(h, 'runner');
    ({ token, clientId } = await registerAgent(h, user, 'box'));
  });
  afterAll(() => h?.close());

  const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token, json });
  const get = <T = Record<string, unknown>>(route: string) => callApi<T>(h, 'GET', route, { token });
  const startRun = async () => (await post<{ runId: string }>('/runs', { trigger: 'manual' })).body.runId;

  it('opens versions, closes changed and deleted ones, and keeps the old tree readable and downloadable', async () => {
    const v1 = { a: Buffer.from('alpha v1'), b: Buffer.from('bravo v1'), c: Buffer.from('charlie v1') };
    await upload(h, token, Object.values(v1));
    const run1 = await startRun();
    const changes1 = await post<{ opened: number; closed: number }>(`/runs/${run1}/changes`, {
      upserts: [fileUpsert('/data/a.txt', v1.a), fileUpsert('/data/b.txt', v1.b), fileUpsert('/data/sub/c.txt', v1.c)],
      deletes: [],
    });
    expect(changes1.body).toEqual({ opened: 3, closed: 0 });
    const finish1 = await post<RunSummary>(`/runs/${run1}/finish`, { status: 'succeeded', stats, preCommands: [] });
    expect(finish1.status).toBe(200);
    expect(finish1.body).toMatchObject({ runId: run1, status: 'succeeded', filesScanned: 3 });
    const afterRun1 = (await get<FilesPage>('/files')).body;
    expect(afterRun1.files.map((f) => f.path)).toEqual(['/data/a.txt', '/data/b.txt', '/data/sub/c.txt']);
    const run1Time = afterRun1.files[0]!.validFrom;

    // Run 2: b changes, c is deleted, a is sent unchanged (a no-op).
    const bV2 = Buffer.from('bravo v2, longer');
    await upload(h, token, [bV2]);
    const run2 = await startRun();
    const changes2 = await post<{ opened: number; closed: number }>(`/runs/${run2}/changes`, {
      upserts: [fileUpsert('/data/a.txt', v1.a), fileUpsert('/data/b.txt', bV2)],
      deletes: ['/data/sub/c.txt'],
    });
    expect(changes2.body).toEqual({ opened: 1, closed: 2 });
    await post(`/runs/${run2}/finish`, { status: 'succeeded', stats, preCommands: [] });

    const now = (await get<FilesPage>('/files')).body.files;
    expect(now.map((f) => [f.path, f.sha256])).toEqual([
      ['/data/a.txt', sha256Hex(v1.a)],
      ['/data/b.txt', sha256Hex(bV2)],
    ]);

    const past = (await get<FilesPage>(`/files?asOf=${encodeURIComponent(run1Time)}`)).body.files;
    expect(past.map((f) => [f.path, f.sha256])).toEqual([
      ['/data/a.txt', sha256Hex(v1.a)],
      ['/data/b.txt', sha256Hex(v1.b)],
      ['/data/sub/c.txt', sha256Hex(v1.c)],
    ]);
    for (const file of past) {
      const got = await download(h, token, file.sha256!);
      expect(got.status).toBe(200);
      expect(sha256Hex(got.bytes)).toBe(file.sha256);
    }

    const bVersions = (await get<{ versions: FileVersion[] }>(`/versions?path=${encodeURIComponent('/data/b.txt')}`)).body.versions;
    expect(bVersions.map((v) => v.sha256)).toEqual([sha256Hex(bV2), sha256Hex(v1.b)]);
    expect(bVersions[0]!.validTo).toBeNull();
    expect(bVersions[1]!.validTo).toBe(bVersions[0]!.validFrom);
    const cVersions = (await get<{ versions: FileVersion[] }>(`/versions?path=${encodeURIComponent('/data/sub/c.txt')}`)).body.versions;
    expect(cVersions).toHaveLength(1);
    expect(cVersions[0]!.validTo).not.toBeNull();

    const [client] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, clientId));
    expect(client?.lastBackupAt).toBeInstanceOf(Date);
    const runs = await listRuns(h.ctx.database.db, clientId);
    expect(runs.map((r) => r.runId)).toEqual([run2, run1]);
  });

  it('refuses a batch naming content the user does not hold, names the missing hashes and applies nothing', async () => {
    const held = Buffer.from('held content');
    const notHeld = Buffer.from('never uploaded');
    await upload(h, token, [held]);
    const run = await startRun();
    const [before] = await h.ctx.database.db.select({ n: count() }).from(fileVersions);
    const refused = await post<{ missing: string[]; message: string }>(`/runs/${run}/changes`, {
      upserts: [fileUpsert('/data/held.txt', held), fileUpsert('/data/not-held.txt', notHeld)],
      deletes: ['/data/a.txt'],
    });
    expect(refused.status).toBe(409);
    expect(refused.body.missing).toEqual([sha256Hex(notHeld)]);
    const [after] = await h.ctx.database.db.select({ n: count() }).from(fileVersions);
    expect(after?.n).toBe(before?.n);
    expect((await get<FilesPage>('/files')).body.files.map((f) => f.path)).toContain('/data/a.txt');
  });

  it('records symlinks and metadata changes, and refuses a path named twice', async () => {
    const run = await startRun();
    const link = { path: '/data/link', kind: 'symlink', sha256: null, size: 0, mtimeMs: 1, mode: 0o120777, linkTarget: 'a.txt' };
    expect((await post(`/runs/${run}/changes`, { upserts: [link], deletes: [] })).body).toEqual({ opened: 1, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [link], deletes: [] })).body).toEqual({ opened: 0, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [{ ...link, linkTarget: 'b.txt' }], deletes: [] })).body).toEqual({ opened: 1, closed: 1 });
    const files = (await get<FilesPage>(`/files?prefix=${encodeURIComponent('/data/link')}`)).body.files;
    expect(files).toMatchObject([{ path: '/data/link', kind: 'symlink', linkTarget: 'b.txt', sha256: null }]);

    const twice = await post<{ message: string }>(`/runs/${run}/changes`, { upserts: [link], deletes: ['/data/link'] });
    expect(twice.status).toBe(400);
    expect(twice.body.message).toContain('deletes[0]');
  });

  it('records directories (no content, size 0), owners and hard-link groups; a change of owner is a new version', async () => {
    const bytes = Buffer.from('hard-linked content');
    await upload(h, token, [bytes]);
    const run = await startRun();
    const directory = { path: '/tree', kind: 'directory', sha256: null, size: 4096, mtimeMs: 1000, mode: 0o40750, uid: 1000, gid: 100 };
    const first = { ...fileUpsert('/tree/one', bytes), uid: 4_294_967_294, gid: 0, hardlinkGroup: 'abc123' };
    const second = { ...fileUpsert('/tree/two', bytes), hardlinkGroup: 'abc123' };
    expect((await post(`/runs/${run}/changes`, { upserts: [directory, first, second], deletes: [] })).body).toEqual({ opened: 3, closed: 0 });
    // Only the directory's reported size differs: the server keeps 0 for directories, so this is no change.
    expect((await post(`/runs/${run}/changes`, { upserts: [{ ...directory, size: 8192 }], deletes: [] })).body).toEqual({ opened: 0, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [{ ...directory, uid: 0 }], deletes: [] })).body).toEqual({ opened: 1, closed: 1 });
    const files = (await get<FilesPage>(`/files?prefix=${encodeURIComponent('/tree')}`)).body.files;
    expect(files).toMatchObject([
      { path: '/tree', kind: 'directory', sha256: null, size: 0, mode: 0o40750, uid: 0, gid: 100, hardlinkGroup: null },
      { path: '/tree/one', kind: 'file', uid: 4_294_967_294, gid: 0, hardlinkGroup: 'abc123' },
      { path: '/tree/two', kind: 'file', uid: null, gid: null, hardlinkGroup: 'abc123' },
    ]);
    const versions = (await get<{ versions: FileVersion[] }>(`/versions?path=${encodeURIComponent('/tree')}`)).body.versions;
    expect(versions.map((v) => v.uid)).toEqual([0, 1000]);

    // An older agent's version (no owner) gets the owner filled in by an otherwise equal upsert: no new version.
    const legacy = fileUpsert('/tree/legacy', bytes);
    expect((await post(`/runs/${run}/changes`, { upserts: [legacy], deletes: [] })).body).toEqual({ opened: 1, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [{ ...legacy, uid: 7, gid: 8, hardlinkGroup: 'abc123' }], deletes: [] })).body).toEqual({ opened: 0, closed: 0 });
    const filled = (await get<{ versions: FileVersion[] }>(`/versions?path=${encodeURIComponent('/tree/legacy')}`)).body.versions;
    expect(filled).toMatchObject([{ uid: 7, gid: 8, hardlinkGroup: 'abc123', validTo: null }]);
    // Once known, an owner change is a change.
    expect((await post(`/runs/${run}/changes`, { upserts: [{ ...legacy, uid: 9, gid: 8 }], deletes: [] })).body).toEqual({ opened: 1, closed: 1 });

    for (const [bad, field] of [
      [{ ...directory, path: '/tree/x', sha256: sha256Hex(bytes) }, 'upserts[0].sha256'],
      [{ ...directory, path: '/tree/y', hardlinkGroup: 'abc' }, 'upserts[0].hardlinkGroup'],
      [{ ...first, path: '/tree/z', uid: -1 }, 'uid'],
      [{ ...first, path: '/tree/z', hardlinkGroup: 'not/a key' }, 'hardlinkGroup'],
    ] as const) {
      const refused = await post<{ message: string }>(`/runs/${run}/changes`, { upserts: [bad], deletes: [] });
      expect(refused.status, JSON.stringify(bad)).toBe(400);
      expect(refused.body.message).toContain(field);
    }
  });

  it('stores "changed while being read" on the version; a clean read of the same bytes opens a new version without it', async () => {
    const bytes = Buffer.from('a log as it was read');
    await upload(h, token, [bytes]);
    const run = await startRun();
    const torn = { ...fileUpsert('/logs/app.log', bytes), changedWhileRead: true };
    expect((await post(`/runs/${run}/changes`, { upserts: [torn], deletes: [] })).body).toEqual({ opened: 1, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [torn], deletes: [] })).body).toEqual({ opened: 0, closed: 0 });
    expect((await post(`/runs/${run}/changes`, { upserts: [fileUpsert('/logs/app.log', bytes)], deletes: [] })).body).toEqual({ opened: 1, closed: 1 });
    const versions = (await get<{ versions: FileVersion[] }>('/versions?path=/logs/app.log')).body.versions;
    expect(versions.map((v) => v.changedWhileRead)).toEqual([undefined, true]);
    await post(`/runs/${run}/finish`, { status: 'succeeded', stats, preCommands: [] });
  });

  it('pages the tree by path and filters by prefix', async () => {
    const bytes = Buffer.from('paged');
    await upload(h, token, [bytes]);
    const run = await startRun();
    const paths = Array.from({ length: 25 }, (_, i) => `/paged/dir/file-${String(i).padStart(2, '0')} with space\n`);
    await post(`/runs/${run}/changes`, { upserts: paths.map((p) => fileUpsert(p, bytes)), deletes: [] });
    await post(`/runs/${run}/changes`, { upserts: [fileUpsert('/paged/dirx/other', bytes)], deletes: [] });
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const query: string = `/files?prefix=${encodeURIComponent('/paged/dir')}&limit=10${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
      const page: FilesPage = (await get<FilesPage>(query)).body;
      seen.push(...page.files.map((f) => f.path));
      after = page.nextAfter;
      if (after === null) break;
    }
    expect(seen).toEqual(paths);
  });

  it('refuses changes to a finished run and finishing it twice', async () => {
    const run = await startRun();
    expect((await post(`/runs/${run}/finish`, { status: 'failed', stats, preCommands: [], error: 'boom' })).status).toBe(200);
    expect((await post(`/runs/${run}/finish`, { status: 'succeeded', stats, preCommands: [] })).status).toBe(409);
    expect((await post(`/runs/${run}/changes`, { upserts: [], deletes: ['/x'] })).status).toBe(409);
  });

  it('closes a run left running when the agent starts a new one', async () => {
    const abandoned = await startRun();
    await startRun();
    const runs = await listRuns(h.ctx.database.db, clientId, { limit: 2 });
    expect(runs.find((r) => r.runId === abandoned)).toMatchObject({ status: 'failed' });
  });

  it('uses the server clock for versions whatever mtime the agent sends', async () => {
    const bytes = Buffer.from('from the future');
    await upload(h, token, [bytes]);
    const run = await startRun();
    const before = Date.now();
    await post(`/runs/${run}/changes`, { upserts: [fileUpsert('/clock/file', bytes, { mtimeMs: Date.parse('2099-01-01T00:00:00Z') })], deletes: [] });
    const [file] = (await get<FilesPage>(`/files?prefix=${encodeURIComponent('/clock')}`)).body.files;
    expect(file!.mtimeMs).toBe(Date.parse('2099-01-01T00:00:00Z'));
    // Server and test share a clock; allow for rounding of the database timestamp.
    expect(Date.parse(file!.validFrom)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(file!.validFrom)).toBeGreaterThan(before - 60_000);
  });
});
