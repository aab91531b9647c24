import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadBatch, type UploadItem } from '../../client/src/backup/uploader.ts';
import { ApiClient } from '../../client/src/net/api-client.ts';
import { PermanentError } from '../../client/src/net/http-errors.ts';
import { ADMIN_PASSWORD, storedObjects } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

describe('the uploader against the real server', () => {
  let base: string;
  let dataDir: string;
  let server: ServerProcess;
  let api: ApiClient;
  let runId: string;

  const item = async (file: string, text: string): Promise<UploadItem> => {
    await writeFile(file, text);
    return { path: file, sha256: sha256(text), size: Buffer.byteLength(text), mtimeMs: (await stat(file)).mtimeMs };
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-upload-'));
    dataDir = path.join(base, 'server');
    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD });
    const anonymous = new ApiClient({ serverUrl: server.url });
    const { token } = await anonymous.register({ username: 'admin', password: ADMIN_PASSWORD, clientName: 'uploader-test', hostname: 'test' });
    await anonymous.close();
    api = new ApiClient({ serverUrl: server.url, token });
    ({ runId } = await api.startRun({ trigger: 'manual' }));
  });

  afterAll(async () => {
    await api?.close();
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('sends many files in one request, each part named by its hash; a second upload is "existing"', async () => {
    const items = await Promise.all(Array.from({ length: 50 }, (_, i) => item(path.join(base, `small-${i}.txt`), `small file ${i}\n`)));
    const first = await uploadBatch(api, runId, items, () => {});
    expect(first.changed).toEqual([]);
    expect(first.uploaded.map((r) => r.status)).toEqual(items.map(() => 'stored'));
    const again = await uploadBatch(api, runId, items.slice(0, 3), () => {});
    expect(again.uploaded.map((r) => r.status)).toEqual(['existing', 'existing', 'existing']);
    expect((await api.missing({ hashes: items.map((i) => i.sha256) })).missing).toEqual([]);
  });

  it('a part with its bytes in hand (kept from hashing) is sent from them without opening its file', async () => {
    const text = 'kept from the hash read\n';
    // The path names nothing: opening it would fail the part as changed.
    const kept: UploadItem = { path: path.join(base, 'gone-since-hashing.txt'), sha256: sha256(text), size: Buffer.byteLength(text), mtimeMs: 0, bytes: Buffer.from(text) };
    const empty: UploadItem = { path: path.join(base, 'gone-empty.txt'), sha256: sha256(''), size: 0, mtimeMs: 0, bytes: Buffer.alloc(0) };
    let sent = 0;
    const outcome = await uploadBatch(api, runId, [kept, empty], (bytes) => (sent += bytes));
    expect(outcome.changed).toEqual([]);
    expect(outcome.uploaded.map((r) => r.sha256)).toEqual([kept.sha256, empty.sha256]);
    expect(sent).toBe(kept.size);
    expect((await api.missing({ hashes: [kept.sha256, empty.sha256] })).missing).toEqual([]);
  });

  it('a file whose bytes changed after hashing (same size and mtime) is caught while streaming; the server keeps nothing of it', async () => {
    const file = path.join(base, 'changing.txt');
    const declared = await item(file, 'original content\n');
    const before = await stat(file);
    await writeFile(file, 'REPLACED content\n'); // same length
    await utimes(file, before.atime, before.mtime); // and the same mtime: only the hash can tell
    const outcome = await uploadBatch(api, runId, [declared], () => {});
    expect(outcome.changed.map((c) => c.path)).toEqual([file]);
    expect((await api.missing({ hashes: [declared.sha256, sha256('REPLACED content\n')] })).missing.sort()).toEqual(
      [declared.sha256, sha256('REPLACED content\n')].sort(),
    );
    expect(await storedObjects(dataDir)).not.toContain(declared.sha256);
  });

  it('a file that grew since it was hashed is caught before its part is closed', async () => {
    const file = path.join(base, 'growing.log');
    const declared = await item(file, 'line 1\n');
    await writeFile(file, 'line 1\nline 2\n');
    const outcome = await uploadBatch(api, runId, [declared], () => {});
    expect(outcome.changed.map((c) => c.path)).toEqual([file]);
    expect(await storedObjects(dataDir)).not.toContain(declared.sha256);
  });

  it('a chunk is sent as a byte range of its file; one whose bytes changed since hashing is caught and not stored', async () => {
    const file = path.join(base, 'large.bin');
    const data = Buffer.alloc(100_000);
    for (let i = 0; i < data.length; i += 1) data[i] = (i * 31 + (i >> 8)) & 0xff;
    await writeFile(file, data);
    const { mtimeMs } = await stat(file);
    const range = (offset: number, size: number): UploadItem => ({
      sha256: createHash('sha256').update(data.subarray(offset, offset + size)).digest('hex'),
      size,
      offset,
      fileSize: data.length,
      path: file,
      mtimeMs,
    });
    const [first, second] = [range(0, 20_000), range(40_000, 30_000)];
    let sent = 0;
    const outcome = await uploadBatch(api, runId, [first, second] as UploadItem[], (bytes) => (sent += bytes));
    expect(outcome.changed).toEqual([]);
    expect(outcome.uploaded.map((r) => [r.sha256, r.size, r.status])).toEqual([
      [first?.sha256, 20_000, 'stored'],
      [second?.sha256, 30_000, 'stored'],
    ]);
    expect(sent).toBe(50_000);

    const third = range(70_000, 20_000);
    const before = await stat(file);
    const handle = await open(file, 'r+');
    await handle.write(Buffer.from('changed'), 0, 7, 80_000);
    await handle.close();
    await utimes(file, before.atime, before.mtime); // the same size and mtime: only the chunk's hash can tell
    const changed = await uploadBatch(api, runId, [third], () => {});
    expect(changed.changed).toEqual([third]);
    expect((await api.missing({ hashes: [third.sha256] })).missing).toEqual([third.sha256]);
  });

  it('a changes request naming content the user does not hold is a permanent error naming it', async () => {
    const unknown = sha256('never uploaded');
    const error = await api
      .changes(runId, { upserts: [{ path: '/x', kind: 'file', sha256: unknown, size: 14, mtimeMs: 0, mode: 0o100644 }], deletes: [] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).missing).toEqual([unknown]);
  });
});
