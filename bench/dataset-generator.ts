/**
 * Deterministic benchmark datasets: the same seed gives the same tree, the
 * same names and the same bytes on every machine, so Cairn and restic (and
 * two runs of the bench) read identical data.
 *
 * Bytes come from AES-256-CTR keystreams keyed by (seed, file, version): fast
 * (OpenSSL), incompressible like media and archives. Text files are built
 * from a fixed pool of generated source-like lines, so they compress the way
 * real source does (restic compresses; Cairn v1 does not).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Small fast PRNG (sfc32) for every structural choice: sizes, kinds, names, which files change. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: string) {
    const digest = createHash('sha256').update(seed).digest();
    this.#a = digest.readUInt32LE(0);
    this.#b = digest.readUInt32LE(4);
    this.#c = digest.readUInt32LE(8);
    this.#d = digest.readUInt32LE(12);
    for (let i = 0; i < 12; i += 1) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
}

/** Pseudo-random bytes for (seed, key): the same inputs always give the same bytes. */
export function randomBytesFor(seed: string, key: string, size: number): Buffer {
  const digest = createHash('sha256').update(`${seed}\0${key}`).digest();
  const cipher = createCipheriv('aes-256-ctr', digest, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

const WORDS = [
  'const', 'let', 'return', 'function', 'import', 'export', 'from', 'await', 'async', 'if', 'else', 'for', 'while',
  'value', 'result', 'index', 'buffer', 'stream', 'config', 'options', 'error', 'handler', 'request', 'response',
  'items', 'length', 'path', 'client', 'server', 'backup', 'content', 'hash', 'size', 'version', 'state', 'cache',
  'new', 'Map', 'Set', 'Promise', 'string', 'number', 'boolean', 'null', 'undefined', 'true', 'false', '=', '=>',
  '{', '}', '(', ')', ';', '.', ',', '+', '-', '*', '//', 'TODO:', 'check', 'the', 'of', 'when', 'this', 'is',
];

/** A fixed pool of source-like lines; text files are sequences of them. */
class LinePool {
  readonly lines: Buffer[] = [];

  constructor(seed: string, count = 4096) {
    const prng = new Prng(`${seed}:lines`);
    for (let i = 0; i < count; i += 1) {
      const indent = '  '.repeat(prng.int(0, 4));
      const words: string[] = [];
      const wordCount = prng.int(1, 14);
      for (let w = 0; w < wordCount; w += 1) words.push(prng.pick(WORDS));
      if (prng.next() < 0.3) words.push(`n${prng.int(0, 99_999)}`);
      this.lines.push(Buffer.from(`${indent}${words.join(' ')}\n`));
    }
  }

  text(prng: Prng, size: number): Buffer {
    const out = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const line = prng.pick(this.lines);
      offset += line.copy(out, offset, 0, Math.min(line.length, size - offset));
    }
    return out;
  }
}

/** One file of a dataset: where it goes, how big, and how its bytes are made. */
export interface DatasetFile {
  /** Relative to the dataset root, POSIX separators. */
  relPath: string;
  size: number;
  kind: 'binary' | 'text';
  /** Content identity: files sharing a key (duplicates) have the same bytes. */
  contentKey: string;
}

export interface DatasetSpec {
  name: string;
  seed: string;
  files: DatasetFile[];
  totalBytes: number;
}

export interface SmallFilesOptions {
  files: number;
  minBytes: number;
  maxBytes: number;
  /** Share of files that are text (the rest binary). */
  textShare: number;
  /** Share of files that repeat an earlier file's content (dedup within the dataset). */
  duplicateShare: number;
  filesPerDirectory: number;
}

/**
 * S1: many small files in a nested tree (`aN/bN/cN/...`, fan-out 10, then
 * `filesPerDirectory` per leaf), with a few odd names (spaces, Unicode).
 */
export function smallFilesSpec(seed: string, options: SmallFilesOptions): DatasetSpec {
  const prng = new Prng(`${seed}:small`);
  const files: DatasetFile[] = [];
  let totalBytes = 0;
  for (let i = 0; i < options.files; i += 1) {
    const leaf = Math.floor(i / options.filesPerDirectory);
    const dir = `a${leaf % 10}/b${Math.floor(leaf / 10) % 10}/c${Math.floor(leaf / 100)}`;
    const kind = prng.next() < options.textShare ? 'text' : 'binary';
    const size = prng.int(options.minBytes, options.maxBytes);
    const odd = i % 997 === 0 ? ' été 文件' : '';
    const name = `${kind === 'text' ? 'note' : 'blob'}-${i}${odd}.${kind === 'text' ? 'txt' : 'bin'}`;
    const duplicateOf = i > 0 && prng.next() < options.duplicateShare ? files[prng.int(0, i - 1)] : undefined;
    const file: DatasetFile = duplicateOf
      ? { relPath: `${dir}/${name}`, size: duplicateOf.size, kind: duplicateOf.kind, contentKey: duplicateOf.contentKey }
      : { relPath: `${dir}/${name}`, size, kind, contentKey: `small:${i}` };
    files.push(file);
    totalBytes += file.size;
  }
  return { name: 'small-files', seed, files, totalBytes };
}

export interface MixedOptions {
  totalBytes: number;
  largeFiles: number;
  /** Share of the total in large files, in medium files; the rest is the source-like tree. */
  largeShare: number;
  mediumShare: number;
  mediumMinBytes: number;
  mediumMaxBytes: number;
  sourceMinBytes: number;
  sourceMaxBytes: number;
}

/**
 * S4: a mixed tree: a few large binary files (media, archives), medium
 * binary files, and a source-tree-like part of many small text files.
 */
export function mixedSpec(seed: string, options: MixedOptions): DatasetSpec {
  const prng = new Prng(`${seed}:mixed`);
  const files: DatasetFile[] = [];
  const largeBudget = Math.floor(options.totalBytes * options.largeShare);
  const mediumBudget = Math.floor(options.totalBytes * options.mediumShare);
  const largeSize = Math.floor(largeBudget / options.largeFiles);
  for (let i = 0; i < options.largeFiles; i += 1) {
    files.push({ relPath: `media/large-${i}.bin`, size: largeSize, kind: 'binary', contentKey: `large:${i}` });
  }
  let medium = 0;
  for (let i = 0; medium < mediumBudget; i += 1) {
    const size = Math.min(prng.int(options.mediumMinBytes, options.mediumMaxBytes), mediumBudget - medium);
    files.push({ relPath: `documents/folder-${i % 16}/doc-${i}.dat`, size, kind: 'binary', contentKey: `medium:${i}` });
    medium += size;
  }
  const sourceBudget = options.totalBytes - largeSize * options.largeFiles - medium;
  const extensions = ['ts', 'js', 'json', 'md', 'css', 'html'];
  let source = 0;
  for (let i = 0; source < sourceBudget; i += 1) {
    const size = Math.min(prng.int(options.sourceMinBytes, options.sourceMaxBytes), sourceBudget - source);
    const dir = `src/pkg-${i % 40}/module-${Math.floor(i / 40) % 25}/${prng.pick(['lib', 'test', 'util', 'api'])}`;
    files.push({ relPath: `${dir}/file-${i}.${prng.pick(extensions)}`, size, kind: 'text', contentKey: `source:${i}` });
    source += size;
  }
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  return { name: 'mixed', seed, files, totalBytes };
}

/** Writes one file's bytes for a content key and version (version 0 = the original). */
function contentFor(spec: DatasetSpec, lines: LinePool, file: DatasetFile, version: number): Buffer {
  const key = version === 0 ? file.contentKey : `${file.contentKey}@v${version}`;
  if (file.kind === 'binary') return randomBytesFor(spec.seed, key, file.size);
  return lines.text(new Prng(`${spec.seed}:${key}`), file.size);
}

const WRITE_PIECE = 16 * 1024 * 1024;

function writeFileBytes(target: string, spec: DatasetSpec, lines: LinePool, file: DatasetFile, version: number): void {
  const fd = openSync(target, 'w');
  try {
    if (file.kind === 'binary' && file.size > WRITE_PIECE) {
      // Large files are written in pieces from one keystream so memory stays flat.
      const key = version === 0 ? file.contentKey : `${file.contentKey}@v${version}`;
      const digest = createHash('sha256').update(`${spec.seed}\0${key}`).digest();
      const cipher = createCipheriv('aes-256-ctr', digest, Buffer.alloc(16));
      const zeros = Buffer.alloc(WRITE_PIECE);
      for (let left = file.size; left > 0; left -= WRITE_PIECE) {
        writeSync(fd, cipher.update(left >= WRITE_PIECE ? zeros : zeros.subarray(0, left)));
      }
    } else {
      writeSync(fd, contentFor(spec, lines, file, version));
    }
  } finally {
    closeSync(fd);
  }
}

export type ProgressFn = (done: number, total: number) => void;

/** Writes the whole dataset under `root` (created). */
export function writeDataset(root: string, spec: DatasetSpec, onProgress?: ProgressFn): void {
  const lines = new LinePool(spec.seed);
  const made = new Set<string>();
  spec.files.forEach((file, index) => {
    const target = path.join(root, file.relPath);
    const dir = path.dirname(target);
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    writeFileBytes(target, spec, lines, file, 0);
    onProgress?.(index + 1, spec.files.length);
  });
}

/** The files S3 changes: `share` of the dataset, spread over the whole tree, chosen by the seed. */
export function filesToChange(spec: DatasetSpec, share: number): DatasetFile[] {
  const prng = new Prng(`${spec.seed}:change`);
  const indexes = spec.files.map((_, i) => i);
  const count = Math.max(1, Math.round(spec.files.length * share));
  for (let i = 0; i < count; i += 1) {
    const j = i + Math.floor(prng.next() * (indexes.length - i));
    [indexes[i], indexes[j]] = [indexes[j] as number, indexes[i] as number];
  }
  return indexes.slice(0, count).map((i) => spec.files[i] as DatasetFile);
}

/**
 * Rewrites `files` in place with new content (`version` > 0), or with their
 * original content (`version` 0, used to reset a reused dataset). Size is
 * kept: a changed file is an edited file, not a different one.
 */
export function rewriteFiles(root: string, spec: DatasetSpec, files: readonly DatasetFile[], version: number): number {
  const lines = new LinePool(spec.seed);
  let bytes = 0;
  for (const file of files) {
    writeFileBytes(path.join(root, file.relPath), spec, lines, file, version);
    bytes += file.size;
  }
  return bytes;
}

/** A short fingerprint of a spec, to know whether a kept dataset directory still matches. */
export function specFingerprint(spec: DatasetSpec): string {
  const hash = createHash('sha256').update(`${spec.name}\0${spec.seed}\0${spec.files.length}\0${spec.totalBytes}`);
  for (const file of spec.files) hash.update(`${file.relPath}\0${file.size}\0${file.contentKey}\n`);
  return hash.digest('hex').slice(0, 16);
}
