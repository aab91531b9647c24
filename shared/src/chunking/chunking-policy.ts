import type { ChunkerParams } from './content-chunker.ts';

/**
 * The chunk sizes Cairn uses, chosen by measurement on the dump scenarios
 * S6 and S7 (`bench/chunk-params.ts`; the figures and the reasons are in
 * docs/storage.md, "Chunking", and docs/decisions.md). Part of the storage
 * format: changing them changes the chunks of every file stored after.
 */
export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({
  minSize: 16 * 1024,
  avgSize: 64 * 1024,
  maxSize: 256 * 1024,
});

/**
 * Files of at most this many bytes are stored as one chunk (the chunk is
 * the whole content, named by the content's hash); larger ones are cut
 * with DEFAULT_CHUNKER_PARAMS. Equal to maxSize: a smaller file would get
 * only a few content-defined cuts, for little dedup and a chunk list.
 */
export const CHUNKING_THRESHOLD_BYTES = DEFAULT_CHUNKER_PARAMS.maxSize;

/** Whether a file of `size` bytes is cut into chunks (true) or stored as one chunk. */
export function isChunkedSize(size: number): boolean {
  return size > CHUNKING_THRESHOLD_BYTES;
}
