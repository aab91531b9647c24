/**
 * The agent's download against a real server: it names damaged stored
 * content as such, and only then. A transfer cut off by the network (a real
 * TCP proxy that drops the connection mid-body) is network trouble; one cut
 * off by the server because the stored bytes fail their hash is damage.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { ApiClient } from '../../src/net/api-client.ts';
import { RetryableError, StoredContentDamagedError } from '../../src/net/http-errors.ts';
import { addUser, registerAgent, startHarness, upload, type Harness } from '../../../server/test/helpers/agent-api-harness.ts';
import { locate } from '../../../server/test/helpers/stored-bytes.ts';

/** Forwards to `port`, but destroys any connection once more than `cutAfterBytes` came back through it. */
async function startCuttingProxy(port: number, cutAfterBytes: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    let returned = 0;
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      returned += chunk.length;
      if (returned > cutAfterBytes) {
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('ApiClient.download', () => {
  let h: Harness;
  let token: string;
  const intact = randomBytes(3 * 1024 * 1024);
  const damaged = randomBytes(3 * 1024 * 1024);
  const small = Buffer.from('small and damaged');
  const gone = Buffer.from('gone from the store');

  beforeAll(async () => {
    h = await startHarness('embedded');
    const user = await addUser(h, 'dora');
    token = (await registerAgent(h, user, 'dora-box')).token;
    // Each upload request is stored as its own pack: `gone` alone in one, so deleting that pack loses nothing else.
    expect((await upload(h, token, [intact, damaged, small])).status).toBe(200);
    expect((await upload(h, token, [gone])).status).toBe(200);
    // `damaged` is hit in its last chunk, so the server has already answered 200 and streamed megabytes when it finds out.
    for (const [bytes, offset] of [[damaged, damaged.length - 10], [small, small.length >> 1]] as const) {
      const { key, at } = await locate(h.ctx.database.db, sha256Hex(bytes), offset);
      const file = h.blobs.pathOf(key);
      const stored = await readFile(file);
      stored[at] = stored[at]! ^ 0x40;
      await writeFile(file, stored);
    }
    await h.blobs.delete((await locate(h.ctx.database.db, sha256Hex(gone), 0)).key);
  });

  afterAll(async () => {
    await h?.close();
  });

  const client = (serverUrl: string, retries: string[] = []) =>
    new ApiClient({ serverUrl, token, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 }, onRetry: (what) => retries.push(what) });

  it('delivers intact bytes whole', async () => {
    const api = client(h.url);
    try {
      expect((await readAll(await api.download(sha256Hex(intact)))).equals(intact)).toBe(true);
    } finally {
      await api.close();
    }
  });

  it('reports a transfer the network cut off as network trouble, not as damage', async () => {
    const proxy = await startCuttingProxy(Number(new URL(h.url).port), 1024 * 1024);
    const api = client(proxy.url);
    try {
      const failure = await readAll(await api.download(sha256Hex(intact))).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(RetryableError);
      expect(String(failure)).toMatch(/broke off/);
    } finally {
      await api.close();
      await proxy.close();
    }
  });

  it('reports a transfer the server cut off for damaged bytes as damaged stored content', async () => {
    const api = client(h.url);
    try {
      const body = await api.download(sha256Hex(damaged));
      await expect(readAll(body)).rejects.toBeInstanceOf(StoredContentDamagedError);
    } finally {
      await api.close();
    }
  });

  it('reports damage the server found before answering, without retrying it', async () => {
    const retries: string[] = [];
    const api = client(h.url, retries);
    try {
      for (const bytes of [small, gone]) {
        await expect(api.download(sha256Hex(bytes))).rejects.toThrow(StoredContentDamagedError);
        await expect(api.download(sha256Hex(bytes))).rejects.toThrow('stored content is damaged or missing');
      }
      expect(retries).toEqual([]);
    } finally {
      await api.close();
    }
  });
});
