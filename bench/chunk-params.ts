/**
 * `npx tsx bench/chunk-params.ts [options]`: which chunk sizes to use, by
 * measurement. Runs the content-defined chunker with several parameter sets
 * over S6's and S7's day-by-day dumps (day 0 and 7 more, as `npm run bench`
 * makes them) and reports per set: bytes stored after each day (unique
 * chunks, raw and each chunk compressed on its own), chunk index rows (the
 * metadata cost, about 100 bytes a row), chunk references (one per chunk of
 * every version) and the chunker's throughput. With restic installed it
 * backs the same dumps up into a restic repository too, for the ratio.
 * Not a test; the figures and the choice are in docs/storage.md and
 * docs/decisions.md.
 *
 *   --datasets L     which of s6,s7 (default both)
 *   --dump-mib N     size of S6's dump (default 64; the full bench uses 2048: the edits are 1% of rows wherever
 *                    they are, so the share of chunks they touch, and every ratio here, does not depend on the size)
 *   --scale N        pgbench scale for S7 (default 20, as the bench); 0 skips S7
 *   --pgbench-url U  the PostgreSQL server for S7 (default postgres://postgres@127.0.0.1:5432/postgres)
 *   --no-restic      skip restic
 *   --json FILE      also write every figure as JSON
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as zlib from 'node:zlib';
import { chunkLengths, type ChunkerParams } from '../shared/src/index.ts';
import { PgbenchDatabase, SqlDump, pgbenchUnavailable } from './dump-datasets.ts';
import { ResticRepository, resticVersion } from './restic-runner.ts';
import { DUMP_DAYS } from './scenarios.ts';

const SEED = 'cairn-bench-v1';
const KiB = 1024;
const MiB = 1024 * KiB;
const INDEX_ROW_BYTES = 100;

const { values: args } = parseArgs({
  options: {
    datasets: { type: 'string', default: 's6,s7' },
    'dump-mib': { type: 'string', default: '64' },
    scale: { type: 'string', default: '20' },
    'pgbench-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    'no-restic': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

/** zstd when this Node has it in zlib (22.15+), else deflate (gzip's codec) level 6 as a stand-in. */
const zstdCompress = (zlib as unknown as { zstdCompressSync?: (data: Uint8Array) => Buffer }).zstdCompressSync;
const codec = zstdCompress ? 'zstd (node:zlib, default level)' : 'deflate level 6 (node:zlib; gzip as a stand-in, this Node has no zstd)';
const compress = (data: Uint8Array): number => (zstdCompress ? zstdCompress(data).length : zlib.deflateRawSync(data, { level: 6 }).length);

const PARAM_SETS: { label: string; params: ChunkerParams }[] = [2, 4, 8, 16, 32, 64, 128, 1024].map((avg) => ({
  label: avg >= 1024 ? `${avg / 1024}M` : `${avg}K`,
  params: { minSize: (avg * KiB) / 4, avgSize: avg * KiB, maxSize: avg * KiB * 4 },
}));

interface SetState {
  label: string;
  params: ChunkerParams;
  seen: Set<string>;
  storedRaw: number;
  storedCompressed: number;
  references: number;
  chunkSeconds: number;
  chunkedBytes: number;
  /** The same new chunks through the zstd CLI at level 3, each its own frame (when zstd is installed). */
  storedZstd: number;
  perDay: { day: number; storedRaw: number; storedCompressed: number; storedZstd: number; newChunks: number }[];
}

interface DatasetResult {
  dataset: string;
  dumpBytes: number[];
  restic: { day: number; storedBytes: number }[];
  sets: SetState[];
}

function progress(message: string): void {
  console.log(`[chunk-params ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

const zstdCli = spawnSync('zstd', ['--version']).status === 0;

/**
 * What zstd -3 makes of these chunks, each compressed on its own (one frame
 * per input file, as a pack would hold them): node:zlib has no zstd on Node
 * 20, and per-chunk zstd is what the packs will store.
 */
function zstdBytes(chunks: Buffer[], scratch: string): number {
  if (!zstdCli || chunks.length === 0) return 0;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const names = chunks.map((chunk, i) => {
    const name = path.join(scratch, String(i));
    writeFileSync(name, chunk);
    return name;
  });
  writeFileSync(`${scratch}.list`, names.join('\n'));
  const ran = spawnSync('sh', ['-c', 'zstd -3 -q -c --filelist "$1" | wc -c', 'sh', `${scratch}.list`], { encoding: 'utf8', maxBuffer: 1 << 20 });
  rmSync(scratch, { recursive: true, force: true });
  if (ran.status !== 0) throw new Error(`zstd failed: ${ran.stderr}`);
  return Number(ran.stdout.trim());
}

/** Feeds one day's dump to every parameter set. */
function processDay(file: string, day: number, states: SetState[]): void {
  const data = readFileSync(file);
  for (const state of states) {
    const fresh: Buffer[] = [];
    const started = performance.now();
    const lengths = chunkLengths(data, state.params);
    state.chunkSeconds += (performance.now() - started) / 1000;
    state.chunkedBytes += data.length;
    let offset = 0;
    let newChunks = 0;
    for (const length of lengths) {
      const chunk = data.subarray(offset, offset + length);
      offset += length;
      const name = createHash('sha256').update(chunk).digest('hex');
      state.references += 1;
      if (state.seen.has(name)) continue;
      state.seen.add(name);
      newChunks += 1;
      state.storedRaw += length;
      state.storedCompressed += Math.min(length, compress(chunk));
      fresh.push(chunk);
    }
    state.storedZstd += zstdBytes(fresh, path.join(path.dirname(file), 'zstd-scratch'));
    state.perDay.push({ day, storedRaw: state.storedRaw, storedCompressed: state.storedCompressed, storedZstd: state.storedZstd, newChunks });
  }
}

async function runDataset(scenario: 'S6' | 'S7', name: string, dir: string, file: string, prepareDay: (day: number) => void, restic: ResticRepository | null): Promise<DatasetResult> {
  const result: DatasetResult = {
    dataset: name,
    dumpBytes: [],
    restic: [],
    sets: PARAM_SETS.map(({ label, params }) => ({ label, params, seen: new Set(), storedRaw: 0, storedCompressed: 0, storedZstd: 0, references: 0, chunkSeconds: 0, chunkedBytes: 0, perDay: [] })),
  };
  await restic?.init();
  try {
    for (let day = 0; day <= DUMP_DAYS; day += 1) {
      prepareDay(day);
      const bytes = readFileSync(file).length;
      result.dumpBytes.push(bytes);
      processDay(file, day, result.sets);
      if (restic) {
        const m = await restic.backup(scenario, dir);
        if (!m.ok) throw new Error(m.error);
        result.restic.push({ day, storedBytes: m.storedBytes });
      }
      const restics = restic ? `; restic ${mb(result.restic.at(-1)?.storedBytes ?? 0)} MB` : '';
      progress(`${name} day ${day}: ${(bytes / 1e6).toFixed(1)} MB dump${restics}`);
    }
  } finally {
    await restic?.remove();
  }
  return result;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(bytes < 10e6 ? 2 : 1);

function table(result: DatasetResult): string {
  const restic = result.restic.at(-1)?.storedBytes;
  const lines = [
    `### ${result.dataset}: day 0 dump ${mb(result.dumpBytes[0] ?? 0)} MB, ${DUMP_DAYS} more days, ${mb(result.dumpBytes.reduce((a, b) => a + b, 0))} MB backed up in all`,
    '',
    `| avg (min-max) | mean chunk | stored raw | deflate | + index rows x ${INDEX_ROW_BYTES} B | growth / day | vs restic | zstd -3 | + index rows | growth / day | vs restic | index rows | references | chunker MB/s |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of result.sets) {
    const day0 = s.perDay[0];
    const last = s.perDay.at(-1);
    if (!day0 || !last) continue;
    const rows = s.seen.size;
    const withIndex = last.storedCompressed + rows * INDEX_ROW_BYTES;
    const growth = (last.storedCompressed - day0.storedCompressed) / DUMP_DAYS;
    const meanChunk = s.chunkedBytes / s.references;
    const kib = (n: number) => (n >= MiB ? `${n / MiB}M` : `${n / KiB}K`);
    const vs = (bytes: number) => (restic ? `${(bytes / restic).toFixed(2)}x` : 'n/a');
    const zstdIndex = last.storedZstd + rows * INDEX_ROW_BYTES;
    const zstd = zstdCli
      ? `${mb(last.storedZstd)} MB | ${mb(zstdIndex)} MB | ${mb((last.storedZstd - day0.storedZstd) / DUMP_DAYS)} MB | ${vs(zstdIndex)}`
      : 'n/a | n/a | n/a | n/a';
    lines.push(
      `| ${s.label} (${kib(s.params.minSize)}-${kib(s.params.maxSize)}) | ${(meanChunk / KiB).toFixed(1)} KiB | ${mb(last.storedRaw)} MB | ${mb(last.storedCompressed)} MB | ${mb(withIndex)} MB | ${mb(growth)} MB | ${vs(withIndex)} | ${zstd} | ${rows.toLocaleString('en-US')} | ${s.references.toLocaleString('en-US')} | ${(s.chunkedBytes / 1e6 / s.chunkSeconds).toFixed(0)} |`,
    );
  }
  if (restic !== undefined) {
    const day0 = result.restic[0]?.storedBytes ?? 0;
    lines.push('', `restic 0.14 (its own chunker, 1 MiB average, zstd): ${mb(day0)} MB after day 0, ${mb(restic)} MB after day ${DUMP_DAYS} (${mb((restic - day0) / DUMP_DAYS)} MB a day).`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'cairn-chunk-params-'));
  const withRestic = !args['no-restic'] && resticVersion() !== null;
  const results: DatasetResult[] = [];
  progress(`codec: ${codec}; restic: ${withRestic ? 'yes' : 'no'}; work dir ${work}`);
  const datasets = new Set((args.datasets as string).split(',').map((d) => d.trim().toLowerCase()));
  try {
    if (datasets.has('s6')) {
      const s6Dir = path.join(work, 's6');
      mkdirSync(s6Dir);
      const s6File = path.join(s6Dir, 'shop.sql');
      const dump = new SqlDump(SEED, Number(args['dump-mib']) * MiB);
      results.push(
        await runDataset(
          'S6',
          `S6 generated dump (${args['dump-mib']} MiB)`,
          s6Dir,
          s6File,
          (day) => {
            if (day > 0) dump.nextDay(0.01);
            dump.write(s6File);
          },
          withRestic ? new ResticRepository(work, 'restic-s6') : null,
        ),
      );
      const zstdRatio = wholeFileCodecs(s6File);
      if (zstdRatio) progress(`S6 last dump as one file: ${zstdRatio}`);
    }

    const scale = Number(args.scale);
    const problem = !datasets.has('s7') ? 'not asked for' : scale > 0 ? pgbenchUnavailable(args['pgbench-url'] as string) : 'skipped (--scale 0)';
    if (problem !== null) {
      progress(`S7 not run: ${problem}`);
    } else {
      const s7Dir = path.join(work, 's7');
      mkdirSync(s7Dir);
      const s7File = path.join(s7Dir, 'pgbench.sql');
      const database = new PgbenchDatabase(args['pgbench-url'] as string, SEED);
      try {
        progress(`S7: pgbench -i -s ${scale}`);
        database.init(scale);
        results.push(
          await runDataset(
            'S7',
            `S7 pg_dump of pgbench -s ${scale}, pgbench -t 2000 a day`,
            s7Dir,
            s7File,
            (day) => {
              if (day > 0) database.work(2000, day);
              database.dump(s7File);
            },
            withRestic ? new ResticRepository(work, 'restic-s7') : null,
          ),
        );
        const ratio = wholeFileCodecs(s7File);
        if (ratio) progress(`S7 last dump as one file: ${ratio}`);
      } finally {
        database.drop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const report = [`Compression: ${codec}, each new chunk on its own, kept raw when that is not smaller; zstd -3: the zstd CLI, one frame per new chunk${zstdCli ? '' : ' (not installed: n/a)'}. Growth / day: days 1-7, compressed, without index rows.`, '', ...results.map(table)].join('\n\n');
  console.log(`\n${report}\n`);
  if (args.json) {
    const plain = results.map((r) => ({ ...r, sets: r.sets.map(({ seen, ...rest }) => ({ ...rest, indexRows: seen.size })) }));
    writeFileSync(args.json, `${JSON.stringify({ codec, results: plain }, null, 2)}\n`);
  }
  return 0;
}

/** The whole file through gzip -6 and zstd -3 (CLIs, when installed): how far deflate's figures are from zstd's. */
function wholeFileCodecs(file: string): string | null {
  const size = (tool: string, level: string) => {
    const ran = spawnSync('sh', ['-c', `${tool} ${level} -c "$1" | wc -c`, 'sh', file], { encoding: 'utf8' });
    return ran.status === 0 ? Number(ran.stdout.trim()) : null;
  };
  const gzip = size('gzip', '-6');
  const zstd = size('zstd', '-3');
  if (gzip === null || zstd === null || gzip === 0 || zstd === 0) return null;
  return `gzip -6 ${mb(gzip)} MB, zstd -3 ${mb(zstd)} MB (zstd/gzip ${(zstd / gzip).toFixed(2)})`;
}

process.exitCode = await main();
