/**
 * An upload part may say which content it is likely similar to: the previous
 * version of the same file, and where in the file the part's bytes sit. The
 * server may then store the part's chunks as deltas against that version's
 * chunks (decision 171). The hint travels in the part's filename, which
 * servers before it ignore, as `<sha256>.similar.<previous sha256>.<offset>`;
 * it changes nothing the server answers, only how it stores the bytes.
 */
export interface SimilarHint {
  /** The content (a whole-file hash) the part is likely similar to. */
  sha256: string;
  /** The part's offset in its file. */
  offset: number;
}

const HINTED = /^([0-9a-f]{64})\.similar\.([0-9a-f]{64})\.(\d{1,15})$/;

export function partFilename(sha256: string, similar?: SimilarHint): string {
  return similar ? `${sha256}.similar.${similar.sha256}.${similar.offset}` : sha256;
}

/** The hint a part's filename carries for the part named `sha256`, or null (no hint, or one that is malformed or for another part). */
export function similarHintOf(sha256: string, filename: string | undefined): SimilarHint | null {
  const match = filename ? HINTED.exec(filename) : null;
  if (!match || match[1] !== sha256 || match[2] === sha256) return null;
  const offset = Number(match[3]);
  return Number.isSafeInteger(offset) ? { sha256: match[2]!, offset } : null;
}
