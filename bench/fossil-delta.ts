/**
 * `npx tsx bench/fossil-delta.ts [--mib 16]`: milliseconds per chunk to
 * make a Fossil delta, the server's encoder
 * (server/src/storage/fossil-delta-encode.ts) against the fossil-delta
 * package's createDelta, on bench S6's pairs: the dump of its generator,
 * cut by the agent's chunker before and after a day's edits (1% of rows),
 * each changed chunk against the old chunk covering its middle, as the
 * server pairs them; and on pairs of unrelated random bytes (no match: the
 * whole target is scanned). Times
 * are CPU time of this process (user + system), best of 3 passes, so that
 * other load on a shared machine counts little. Figures: decision 186.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createDelta } from 'fossil-delta';
import { ContentChunker, DEFAULT_CHUNKER_PARAMS } from '@cairn/shared';
import { createFossilDelta } from '../server/src/storage/fossil-delta-encode.ts';
import { SqlDump } from './dump-datasets.ts';

const { values: args } = parseArgs({ options: { mib: { type: 'string', default: '16' } } });
const MiB = 1024 * 1024;

/** The chunks of `bytes` as the agent cuts them, with their offsets. */
function chunksOf(bytes: Buffer): { offset: number; bytes: Buffer }[] {
  const chunker = new ContentChunker(DEFAULT_CHUNKER_PARAMS);
  const out: { offset: number; bytes: Buffer }[] = [];
  let offset = 0;
  for (const length of [...chunker.update(bytes), ...chunker.final()]) {
    out.push({ offset, bytes: bytes.subarray(offset, offset + length) });
    offset += length;
  }
  return out;
}

/** Day 1's changed chunks of bench S6's dump, each with the day-0 chunk covering its middle (the server's pairing). */
function dumpPairs(): [Buffer, Buffer][] {
  const dump = new SqlDump('cairn-bench-v1', Number(args.mib) * MiB);
  const before = Buffer.concat([...dump.pieces()]);
  dump.nextDay(0.01);
  const after = Buffer.concat([...dump.pieces()]);
  const old = chunksOf(before);
  const known = new Set(old.map((c) => c.bytes.toString('base64')));
  const pairs: [Buffer, Buffer][] = [];
  for (const chunk of chunksOf(after)) {
    if (known.has(chunk.bytes.toString('base64'))) continue;
    const middle = chunk.offset + Math.floor(chunk.bytes.length / 2);
    const base = old.findLast((c) => c.offset <= middle) ?? old[0]!;
    pairs.push([Buffer.from(base.bytes), Buffer.from(chunk.bytes)]);
  }
  return pairs;
}

function randomPairs(): [Buffer, Buffer][] {
  return Array.from({ length: 100 }, () => [randomBytes(64 * 1024), randomBytes(64 * 1024)]);
}

function cpuMs(run: () => void): number {
  let best = Infinity;
  for (let pass = 0; pass < 3; pass += 1) {
    const start = process.cpuUsage();
    run();
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

for (const [name, make] of [
  [`bench S6's dump (${args.mib} MiB), day 1's changed chunks against their bases`, dumpPairs],
  ['random 64 KiB pairs, nothing matches', randomPairs],
] as const) {
  const pairs = make();
  const chunks = pairs.length;
  const kib = pairs.reduce((sum, [, target]) => sum + target.length, 0) / chunks / 1024;
  let oursBytes = 0;
  let theirsBytes = 0;
  for (const [base, target] of pairs) {
    const ours = createFossilDelta(base, target);
    const theirs = createDelta(base, target);
    if (!ours.equals(Buffer.from(theirs))) throw new Error('the two encoders disagree');
    oursBytes += ours.length;
    theirsBytes += theirs.length;
  }
  const theirsMs = cpuMs(() => {
    for (const [base, target] of pairs) createDelta(base, target);
  });
  const oursMs = cpuMs(() => {
    for (const [base, target] of pairs) createFossilDelta(base, target);
  });
  console.log(
    `${name}: ${chunks} chunks of ${kib.toFixed(0)} KiB on average; fossil-delta ${(theirsMs / chunks).toFixed(3)} ms/chunk, ours ${(oursMs / chunks).toFixed(3)} ms/chunk ` +
      `(${(theirsMs / oursMs).toFixed(1)}x); delta bytes ${theirsBytes} and ${oursBytes}`,
  );
}
