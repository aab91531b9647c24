/**
 * Moves v1 whole-content objects into packs (decision 133). A v1 chunk row
 * (pack_id null) names an object keyed by its own hash; it stays readable in
 * place until this job has written its bytes into a pack and switched the
 * row, after which the old object is unnamed and GC deletes it a grace
 * period later (collectOrphans), so a read that found the old location just
 * before still finds the bytes.
 *
 * An object of at most the chunking threshold becomes one chunk of a pack,
 * same hash. A larger one is cut with the agents' chunker: its pieces go
 * into packs, and in one transaction a contents row and its content_chunks
 * take the place of the old whole-hash chunk row (decision 91: a hash is a
 * contents row, else a chunk), so the owners and versions naming the hash
 * stay valid. Rows after objects, under the shared content lock; a switch
 * applies only while the v1 row is still there and still v1, so a GC or an
 * upload in between wins and this job's copy is dead space for repack.
 * Killed at any point, it loses nothing and starts over where it stopped.
 */
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { CHUNKING_THRESHOLD_BYTES, ContentChunker, DEFAULT_CHUNKER_PARAMS } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf, type Tx } from '../db/database.ts';
import { CHUNK_CODECS } from './chunk-codec.ts';
import type { ChunkLocation } from './pack-format.ts';
import { markChunksDamaged, packBytesOf, recordPack } from './pack-index.ts';
import { PackWriter } from './pack-writer.ts';
import { repairFromReplica } from './replica-repair.ts';

export interface V1MigrationResult {
  ran: boolean;
  /** v1 objects now in packs. */
  moved: number;
  /** Objects found missing or damaged (marked, left for an upload to heal). */
  damaged: number;
  /** v1 rows left when the run stopped (0: done). */
  remaining: number;
}

const BATCH = 200;

export interface V1MigrationOptions {
  /** Stop after this many objects (default: all). */
  limit?: number;
  /** Test hook: after a pack was put and before its rows are switched. */
  afterPackWritten?: (locations: readonly ChunkLocation[]) => Promise<void>;
}

/** Runs the migration until no v1 row is left (or `limit`); one replica at a time. */
export async function migrateV1Objects(ctx: AppContext, options: V1MigrationOptions = {}): Promise<V1MigrationResult> {
  const db = ctx.database.db;
  const result: V1MigrationResult = { ran: true, moved: 0, damaged: 0, remaining: 0 };
  const outcome = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.v1Migration, async () => {
    let after = '';
    for (;;) {
      const budget = options.limit === undefined ? BATCH : Math.min(BATCH, options.limit - result.moved - result.damaged);
      if (budget <= 0) break;
      const rows = rowsOf<{ sha256: string; size: number | string }>(
        await db.execute(sql`
          select encode(sha256, 'hex') as sha256, size from chunks
          where pack_id is null and damaged_at is null and sha256 > decode(${after}, 'hex')
          order by sha256 limit ${budget}`),
      );
      if (rows.length === 0) break;
      after = rows.at(-1)!.sha256;
      const writer = new PackWriter(ctx.blobs);
      const small: string[] = [];
      const flushSmall = async (locations: ChunkLocation[]) => {
        if (locations.length === 0) return;
        await options.afterPackWritten?.(locations);
        await switchSmall(ctx, locations);
        result.moved += locations.filter((l) => small.includes(l.sha256)).length;
      };
      for (const row of rows) {
        const size = Number(row.size);
        try {
          if (size <= CHUNKING_THRESHOLD_BYTES) {
            const raw = await readWhole(ctx, row.sha256, size);
            small.push(row.sha256);
            await flushSmall(await writer.add(row.sha256, raw, { hashed: true }));
          } else {
            await flushSmall(await writer.flush());
            if (await moveLarge(ctx, row.sha256, size, options)) result.moved++;
          }
        } catch (error) {
          if (!(error instanceof V1ObjectDamagedError)) throw error;
          // Put back from the replica's verified copy (decision 163), it is moved by the next run instead of marked.
          if (ctx.replica && (await repairV1Object(ctx, row.sha256)) === 'repaired') continue;
          await markChunksDamaged(db, [row.sha256]);
          ctx.log.error({ sha256: row.sha256, detail: error.message }, 'a v1 object is missing or damaged; marked for re-upload');
          result.damaged++;
        }
      }
      await flushSmall(await writer.flush());
      ctx.log.info({ moved: result.moved, damaged: result.damaged }, 'moving v1 objects into packs');
    }
    const [left] = rowsOf<{ n: number | string }>(await db.execute(sql`select count(*) as n from chunks where pack_id is null`));
    result.remaining = Number(left?.n ?? 0);
  });
  if (!outcome.ran) return { ...result, ran: false };
  if (result.moved + result.damaged > 0) ctx.log.info({ ...result }, 'v1 objects moved into packs');
  return result;
}

class V1ObjectDamagedError extends Error {}

async function repairV1Object(ctx: AppContext, sha256: string): Promise<string> {
  try {
    return await repairFromReplica(ctx, sha256);
  } catch (error) {
    ctx.log.error({ err: error, sha256 }, 'could not repair a v1 object from the replica');
    return 'failed';
  }
}

/** A v1 object's bytes, checked against its hash and size. */
async function readWhole(ctx: AppContext, sha256: string, size: number): Promise<Buffer> {
  const stream = await ctx.blobs.get(sha256);
  if (stream === null) throw new V1ObjectDamagedError('the stored object is missing');
  const pieces: Buffer[] = [];
  for await (const piece of stream as AsyncIterable<Buffer>) pieces.push(piece);
  const raw = Buffer.concat(pieces);
  const actual = createHash('sha256').update(raw).digest('hex');
  if (actual !== sha256 || raw.length !== size) throw new V1ObjectDamagedError(`the stored bytes (${raw.length} of ${size}) hash to ${actual}`);
  return raw;
}

/** Records a pack of one-chunk v1 objects and moves each row that is still v1 into it. */
async function switchSmall(ctx: AppContext, locations: readonly ChunkLocation[]): Promise<void> {
  await lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
    const packId = await insertPack(tx, locations);
    await tx.execute(sql`
      update chunks ch set pack_id = ${packId}, pack_offset = x."offset", stored_length = x.length, codec = x.codec
      from jsonb_to_recordset(${JSON.stringify(locations.map((l) => ({ sha256: l.sha256, offset: l.offset, length: l.length, codec: CHUNK_CODECS[l.codec] })))}::jsonb)
        as x(sha256 text, "offset" bigint, length integer, codec smallint)
      where ch.sha256 = decode(x.sha256, 'hex') and ch.pack_id is null`);
  });
}

async function insertPack(tx: Tx, locations: readonly ChunkLocation[]): Promise<number> {
  const [row] = rowsOf<{ id: number }>(
    await tx.execute(sql`
      insert into packs (sha256, bytes, chunk_count)
      values (decode(${locations[0]!.packKey.slice('packs/'.length)}, 'hex'), ${packBytesOf(locations)}, ${locations.length})
      returning id`),
  );
  return Number(row!.id);
}

/**
 * Cuts a large v1 object into chunks written to packs of their own, then
 * replaces its whole-hash chunk row by a contents row and its chunk list;
 * false when the row went meanwhile (GC took it, nothing to switch).
 */
async function moveLarge(ctx: AppContext, sha256: string, size: number, options: V1MigrationOptions): Promise<boolean> {
  const stream = await ctx.blobs.get(sha256);
  if (stream === null) throw new V1ObjectDamagedError('the stored object is missing');
  const writer = new PackWriter(ctx.blobs);
  const chunker = new ContentChunker(DEFAULT_CHUNKER_PARAMS);
  const whole = createHash('sha256');
  const list: { sha256: string; size: number }[] = [];
  const packs: ChunkLocation[][] = [];
  let carry: Buffer[] = [];
  let total = 0;
  const emit = async (chunk: Buffer) => {
    const name = createHash('sha256').update(chunk).digest('hex');
    list.push({ sha256: name, size: chunk.length });
    const written = await writer.add(name, chunk, { hashed: true });
    if (written.length > 0) packs.push(written);
  };
  for await (const piece of stream as AsyncIterable<Buffer>) {
    total += piece.length;
    whole.update(piece);
    let position = 0;
    for (const length of chunker.update(piece)) {
      const carried = carry.reduce((sum, c) => sum + c.length, 0);
      await emit(Buffer.concat([...carry, piece.subarray(position, position + length - carried)], length));
      position += length - carried;
      carry = [];
    }
    if (position < piece.length) carry.push(Buffer.from(piece.subarray(position)));
  }
  if (chunker.final().length > 0) await emit(Buffer.concat(carry));
  const actual = whole.digest('hex');
  if (actual !== sha256 || total !== size) throw new V1ObjectDamagedError(`the stored bytes (${total} of ${size}) hash to ${actual}`);
  const last = await writer.flush();
  if (last.length > 0) packs.push(last);
  for (const locations of packs) await options.afterPackWritten?.(locations);
  return lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
    const gone = rowsOf(await tx.execute(sql`delete from chunks where sha256 = decode(${sha256}, 'hex') and pack_id is null returning 1`));
    for (const locations of packs) await recordPack(tx, { packKey: locations[0]!.packKey, bytes: packBytesOf(locations), locations });
    if (gone.length === 0) return false;
    // Whoever held the content holds its pieces, as if they had uploaded them chunk by chunk.
    await tx.execute(sql`
      insert into owner_contents (content_sha256, user_id)
      select decode(x.c, 'hex'), oc.user_id
      from owner_contents oc, jsonb_array_elements_text(${JSON.stringify([...new Set(list.map((c) => c.sha256))])}::jsonb) as x(c)
      where oc.content_sha256 = decode(${sha256}, 'hex')
      on conflict do nothing`);
    await tx.execute(sql`
      insert into contents (sha256, size, chunk_count) values (decode(${sha256}, 'hex'), ${size}, ${list.length})
      on conflict (sha256) do nothing`);
    let offset = 0;
    const rows = list.map((c, seq) => {
      const row = { c: c.sha256, s: seq, o: offset };
      offset += c.size;
      return row;
    });
    for (let i = 0; i < rows.length; i += 50_000) {
      await tx.execute(sql`
        insert into content_chunks (content_sha256, seq, chunk_sha256, "offset")
        select decode(${sha256}, 'hex'), x.s, decode(x.c, 'hex'), x.o
        from jsonb_to_recordset(${JSON.stringify(rows.slice(i, i + 50_000))}::jsonb) as x(c text, s integer, o bigint)
        on conflict do nothing`);
    }
    return true;
  });
}
