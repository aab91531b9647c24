import { asc, eq } from 'drizzle-orm';
import { expect } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { contentChunks } from '../../src/db/schema.ts';
import { chunkLocations } from '../../src/storage/pack-index.ts';

/**
 * Where byte `offset` of a content is stored, from the database's index: the
 * store key (a pack, or a v1 object) and the position in it. For tests that
 * damage stored bytes behind the server's back, so the chunk must be stored
 * raw (random or tiny bytes are); an offset past its chunk's end lands on the
 * chunk's last byte.
 */
export async function locate(db: Db, sha256: string, offset: number): Promise<{ key: string; at: number }> {
  const listed = await db
    .select({ chunk: contentChunks.chunkSha256, offset: contentChunks.offset })
    .from(contentChunks)
    .where(eq(contentChunks.contentSha256, sha256))
    .orderBy(asc(contentChunks.seq));
  const pieces = listed.length > 0 ? listed : [{ chunk: sha256, offset: 0 }];
  const piece = pieces.filter((p) => p.offset <= offset).at(-1)!;
  const location = (await chunkLocations(db, [piece.chunk])).get(piece.chunk)!;
  if (location.kind !== 'pack') return { key: location.key, at: offset - piece.offset };
  expect(location.codec).toBe('raw');
  return { key: location.packKey, at: location.offset + Math.min(offset - piece.offset, location.length - 1) };
}
