/**
 * `npx tsx bench/chunker-throughput.ts [MiB]`: how fast the content-defined
 * chunker cuts (MB/s, one core), on pseudo-random bytes and on dump-like
 * text, for several parameter sets, one shot and fed in 1 MiB pieces. Not a
 * test: a figure for docs/storage.md. SHA-256 of the same bytes is shown as
 * the yardstick (the agent hashes every chunk anyway).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { ContentChunker, chunkLengths, type ChunkerParams } from '../shared/src/index.ts';

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 256) * MiB;

const random = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16)).update(Buffer.alloc(size));
const text = (() => {
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let row = 0; offset < size; row += 1) {
    const line = `${row}\t${random.readUInt32LE(row % (size - 4)) % 1_000_000}\t${(random.readUInt16LE(row % (size - 2)) % 5000) - 2500}\t                                                                                    \n`;
    offset += out.write(line, offset);
  }
  return out;
})();

function best(run: () => void, times = 3): number {
  let seconds = Infinity;
  for (let i = 0; i < times; i += 1) {
    const started = performance.now();
    run();
    seconds = Math.min(seconds, (performance.now() - started) / 1000);
  }
  return seconds;
}

const mbps = (seconds: number) => `${(size / 1e6 / seconds).toFixed(0)} MB/s`;
console.log(`${size / MiB} MiB per input; node ${process.version}; best of 3`);
console.log(`sha256: ${mbps(best(() => createHash('sha256').update(random).digest()))}`);
for (const avg of [8, 16, 32, 64, 128, 1024]) {
  const params: ChunkerParams = { minSize: (avg * 1024) / 4, avgSize: avg * 1024, maxSize: avg * 1024 * 4 };
  for (const [name, data] of [['random', random], ['text', text]] as const) {
    let chunks = 0;
    const oneShot = best(() => (chunks = chunkLengths(data, params).length));
    const pieces = best(() => {
      const chunker = new ContentChunker(params);
      for (let offset = 0; offset < data.length; offset += MiB) chunker.update(data.subarray(offset, offset + MiB));
      chunker.final();
    });
    console.log(`avg ${String(avg).padStart(4)} KiB ${name.padEnd(6)}: one shot ${mbps(oneShot)}, 1 MiB pieces ${mbps(pieces)}; ${chunks} chunks, mean ${(data.length / chunks / 1024).toFixed(1)} KiB`);
  }
}
