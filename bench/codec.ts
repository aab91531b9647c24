/**
 * `node --import tsx bench/codec.ts [--pg-dump FILE]`: zstd speed and ratio
 * of the pack layer's codec backends on this runtime, per level and chunk
 * size, on generated text, source code, random bytes and (optionally) a
 * real pg_dump. Run it with Node 20 (WebAssembly only) and Node >= 22.15
 * (node:zlib too) to compare; figures are in docs/decisions.md (118).
 * Speeds are per CPU second of this process (user + system, all threads),
 * so that other load on a shared machine does not count; best of 3 passes.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeChunk, nodeZstdBackend, wasmZstdBackend, type ZstdBackend } from '../server/src/storage/chunk-codec.ts';

const MiB = 1024 * 1024;
const { values: args } = parseArgs({ options: { 'pg-dump': { type: 'string' }, mib: { type: 'string', default: '32' } } });
const SAMPLE_BYTES = Number(args.mib) * MiB;

async function sourceText(): Promise<Buffer> {
  const root = path.join(import.meta.dirname, '..');
  const parts: Buffer[] = [];
  let bytes = 0;
  for (const dir of ['server/src', 'client/src', 'shared/src', 'docs', 'node_modules/typescript/lib']) {
    for (const entry of await readdir(path.join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !/\.(ts|md|js)$/.test(entry.name) || bytes >= SAMPLE_BYTES) continue;
      const file = await readFile(path.join(entry.parentPath, entry.name));
      parts.push(file);
      bytes += file.length;
    }
  }
  return Buffer.concat(parts).subarray(0, SAMPLE_BYTES);
}

/** Rows like a plain-text dump with varied numbers and words (compresses 2-3x, far less than pgbench's filler). */
function dumpRows(): Buffer {
  let state = 42;
  const next = () => (state = (state * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 1; bytes < SAMPLE_BYTES; i += 1) {
    const line = `${i}\t${1 + Math.floor(i / 100_000)}\t${Math.floor(next() * 100_000) - 50_000}\tcustomer ${Math.floor(next() * 1e6)} note ${next().toString(36).slice(2, 10)}\n`;
    lines.push(line);
    bytes += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, SAMPLE_BYTES);
}

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

async function measure(zstd: ZstdBackend, data: Buffer, chunkBytes: number, level: number) {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) chunks.push(data.subarray(at, at + chunkBytes));
  let best = { compressMiBs: 0, decompressMiBs: 0, stored: 0, rawShare: 0 };
  for (let pass = 0; pass < 3; pass += 1) {
    let started = cpuSeconds();
    const encoded = [];
    for (const chunk of chunks) encoded.push(await encodeChunk(chunk, zstd, level));
    const compressSeconds = cpuSeconds() - started;
    started = cpuSeconds();
    let decodedBytes = 0;
    for (const [i, { codec, stored }] of encoded.entries()) {
      if (codec === 'zstd') decodedBytes += (await zstd.decompress(stored, chunks[i]!.length)).length;
    }
    const decompressSeconds = cpuSeconds() - started;
    const compressed = encoded.filter((e) => e.codec === 'zstd');
    best = {
      compressMiBs: Math.max(best.compressMiBs, data.length / MiB / compressSeconds),
      // Counts the raw bytes of the chunks that were stored compressed (0: none was).
      decompressMiBs: decodedBytes === 0 ? 0 : Math.max(best.decompressMiBs, decodedBytes / MiB / decompressSeconds),
      stored: encoded.reduce((sum, e) => sum + e.stored.length, 0),
      rawShare: 1 - compressed.length / encoded.length,
    };
  }
  return best;
}

const samples: [string, Buffer][] = [
  ['dump rows', dumpRows()],
  ['source code', await sourceText()],
  ['random', randomBytes(SAMPLE_BYTES)],
];
if (args['pg-dump']) samples.unshift(['pg_dump pgbench', (await readFile(args['pg-dump'])).subarray(0, SAMPLE_BYTES)]);

const backends = [nodeZstdBackend(), await wasmZstdBackend()].filter((b): b is ZstdBackend => b !== null);
console.log(`Node ${process.version}, ${SAMPLE_BYTES / MiB} MiB a sample, best of 3, per CPU second`);
console.log('backend              level chunk   sample           ratio  stored raw  compress MiB/s  decompress MiB/s');
for (const [name, data] of samples) {
  for (const zstd of backends) {
    for (const level of [1, 3]) {
      for (const chunkBytes of [64 * 1024, 1024 * 1024]) {
        const r = await measure(zstd, data, chunkBytes, level);
        console.log(
          `${zstd.name.padEnd(20)} ${String(level).padStart(5)} ${`${chunkBytes / 1024}K`.padStart(5)}   ${name.padEnd(16)} ${(data.length / r.stored).toFixed(2).padStart(6)}x ${`${Math.round(r.rawShare * 100)}%`.padStart(10)} ${r.compressMiBs.toFixed(0).padStart(15)} ${r.decompressMiBs.toFixed(0).padStart(17)}`,
        );
      }
    }
  }
}
