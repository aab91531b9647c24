import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { createTarGzStream, type TreeEntry } from '../../src/dashboard/tar-export.ts';

const file = (path: string, size: number, sha = path): TreeEntry => ({
  path,
  kind: 'file',
  size,
  mtimeMs: Date.parse('2026-01-02T03:04:05Z'),
  mode: 0o100640,
  linkTarget: null,
  contentSha256: sha,
});

async function* fromArray(entries: TreeEntry[]) {
  yield* entries;
}

async function entriesOf(gz: Buffer) {
  const found: { name: string; type: string; mode: number; linkname: string | null; body: string }[] = [];
  const extract = tar.extract();
  extract.end(gunzipSync(gz));
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    found.push({ name: entry.header.name, type: entry.header.type, mode: entry.header.mode, linkname: entry.header.linkname ?? null, body: Buffer.concat(chunks).toString() });
  }
  return found;
}

describe('createTarGzStream', () => {
  it('names entries relative to the folder’s parent and keeps modes and symlinks', async () => {
    const contents: Record<string, string> = { a: 'alpha', b: 'bravo!' };
    const stream = createTarGzStream({
      base: '/srv',
      entries: fromArray([
        file('/srv/data/a.txt', 5, 'a'),
        { ...file('/srv/data/link', 0), kind: 'symlink', linkTarget: 'a.txt', contentSha256: null },
        file('/srv/data/sub/b.txt', 6, 'b'),
      ]),
      openContent: async (sha) => ({ size: contents[sha]!.length, stream: Readable.from([Buffer.from(contents[sha]!)]) }),
    });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(await entriesOf(Buffer.concat(chunks))).toEqual([
      { name: 'data/a.txt', type: 'file', mode: 0o640, linkname: null, body: 'alpha' },
      { name: 'data/link', type: 'symlink', mode: 0o640, linkname: 'a.txt', body: '' },
      { name: 'data/sub/b.txt', type: 'file', mode: 0o640, linkname: null, body: 'bravo!' },
    ]);
  });

  it('writes directories as directory entries, and a hard-link group as one file and links to it, unless the content differs', async () => {
    const contents: Record<string, string> = { same: 'same bytes', other: 'changed since' };
    const stream = createTarGzStream({
      base: '/srv',
      entries: fromArray([
        { ...file('/srv/data', 0), kind: 'directory', mode: 0o40700, contentSha256: null },
        { ...file('/srv/data/a', 10, 'same'), hardlinkGroup: 'g' },
        { ...file('/srv/data/b', 10, 'same'), hardlinkGroup: 'g' },
        { ...file('/srv/data/c', 13, 'other'), hardlinkGroup: 'g' },
        { ...file('/srv/data/d', 10, 'same'), hardlinkGroup: 'h' },
      ]),
      openContent: async (sha) => ({ size: Buffer.byteLength(contents[sha]!), stream: Readable.from([Buffer.from(contents[sha]!)]) }),
    });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(await entriesOf(Buffer.concat(chunks))).toEqual([
      { name: 'data/', type: 'directory', mode: 0o700, linkname: null, body: '' },
      { name: 'data/a', type: 'file', mode: 0o640, linkname: null, body: 'same bytes' },
      { name: 'data/b', type: 'link', mode: 0o640, linkname: 'data/a', body: '' },
      { name: 'data/c', type: 'file', mode: 0o640, linkname: null, body: 'changed since' },
      { name: 'data/d', type: 'file', mode: 0o640, linkname: null, body: 'same bytes' },
    ]);
  });

  it('keeps long and non-ASCII names intact', async () => {
    const name = `/data/${'ü dir with spaces/'.repeat(8)}Grüße – ${'x'.repeat(150)}.txt`;
    const stream = createTarGzStream({
      base: '/',
      entries: fromArray([file(name, 2)]),
      openContent: async () => ({ size: 2, stream: Readable.from([Buffer.from('ok')]) }),
    });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const [entry] = await entriesOf(Buffer.concat(chunks));
    expect(entry).toMatchObject({ name: name.slice(1), body: 'ok' });
  });

  it('fails the stream when a stored content is missing', async () => {
    const stream = createTarGzStream({ base: '/', entries: fromArray([file('/x', 3)]), openContent: async () => null });
    await expect(text(stream)).rejects.toThrow(/stored content of \/x is missing/);
  });

  it('stops reading the tree and the blob store when the download goes away', async () => {
    let opened = 0;
    const closed: Promise<void>[] = [];
    let treeClosed!: () => void;
    const treeDone = new Promise<void>((resolve) => (treeClosed = resolve));
    async function* manyFiles() {
      try {
        for (let i = 0; i < 1000; i++) yield file(`/big/${i}`, 1024 * 1024);
      } finally {
        treeClosed();
      }
    }
    const stream = createTarGzStream({
      base: '/',
      entries: manyFiles(),
      openContent: async () => {
        opened += 1;
        const content = Readable.from((function* () {
          for (let i = 0; i < 16; i++) yield randomBytes(64 * 1024);
        })());
        closed.push(new Promise((resolve) => content.once('close', () => resolve())));
        return { size: 16 * 64 * 1024, stream: content };
      },
    });
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await treeDone;
    expect(opened).toBeLessThan(1000);
    await Promise.all(closed); // every opened content stream is closed, none left dangling
    expect(closed).toHaveLength(opened);
  });
});
