/**
 * `node --import tsx bench/packs.ts [--chunks 20000]`: the pack layer alone
 * on the disk store and on s3rver: small chunks like S1's files (0.5-8 KiB,
 * half text, half random) through PackWriter, then every chunk read back
 * with readChunk (one ranged get each). Prints wall time, objects written and
 * bytes stored. Figures are in the report of issue 11's pack layer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BlobStore } from '../server/src/blob/blob-store.ts';
import { DiskBlobStore } from '../server/src/blob/disk-blob-store.ts';
import { S3BlobStore } from '../server/src/blob/s3-blob-store.ts';
import { defaultZstdBackend } from '../server/src/storage/chunk-codec.ts';
import type { ChunkLocation } from '../server/src/storage/pack-format.ts';
import { readChunk } from '../server/src/storage/pack-reader.ts';
import { PackWriter } from '../server/src/storage/pack-writer.ts';
import { startS3rver } from '../server/test/helpers/s3rver.ts';

const { values: args } = parseArgs({ options: { chunks: { type: 'string', default: '20000' } } });
const COUNT = Number(args.chunks);

function chunks(): Buffer[] {
  return Array.from({ length: COUNT }, (_, i) => {
    const size = 512 + ((i * 7919) % (7.5 * 1024));
    if (i % 2 === 1) return randomBytes(size);
    let text = '';
    for (let line = 0; text.length < size; line += 1) text += `export const value${i}_${line} = ${(i * 31 + line) % 997}; // item ${line}\n`;
    return Buffer.from(text.slice(0, size));
  });
}

async function run(name: string, store: BlobStore, data: Buffer[]): Promise<void> {
  const hashes = data.map((raw) => createHash('sha256').update(raw).digest('hex'));
  const writer = new PackWriter(store);
  let started = performance.now();
  const locations: ChunkLocation[] = [];
  for (const [i, raw] of data.entries()) locations.push(...(await writer.add(hashes[i]!, raw)));
  locations.push(...(await writer.flush()));
  const writeSeconds = (performance.now() - started) / 1000;
  const packs = new Set(locations.map((l) => l.packKey)).size;
  const rawBytes = data.reduce((sum, raw) => sum + raw.length, 0);
  let storedBytes = 0;
  for await (const info of store.list()) storedBytes += info.size;
  started = performance.now();
  for (const location of locations) await readChunk(store, location);
  const readSeconds = (performance.now() - started) / 1000;
  const MiB = 1024 * 1024;
  console.log(
    `${name.padEnd(8)} ${COUNT} chunks, ${(rawBytes / MiB).toFixed(1)} MiB raw -> ${packs} pack(s), ${(storedBytes / MiB).toFixed(1)} MiB stored; ` +
      `write ${writeSeconds.toFixed(2)} s (${(rawBytes / MiB / writeSeconds).toFixed(0)} MiB/s); ` +
      `read every chunk ${readSeconds.toFixed(2)} s (${(COUNT / readSeconds).toFixed(0)} chunks/s)`,
  );
}

const data = chunks();
console.log(`Node ${process.version}, zstd from ${(await defaultZstdBackend()).name}`);
const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-packs-'));
try {
  await run('disk', new DiskBlobStore(path.join(dir, 'blobs')), data);
} finally {
  await rm(dir, { recursive: true, force: true });
}
const s3 = await startS3rver();
const s3Store = new S3BlobStore(s3.s3Config);
try {
  await run('s3rver', s3Store, data);
} finally {
  await s3Store.close();
  await s3.close();
}
