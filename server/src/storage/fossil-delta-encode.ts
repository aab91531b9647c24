/**
 * Makes a delta in Fossil's format
 * (https://fossil-scm.org/home/doc/trunk/www/delta_format.wiki) that turns
 * `source` into `target`, with the algorithm of Fossil's delta.c as the
 * `fossil-delta` package implements it: the source is indexed by a rolling
 * hash of every aligned 16-byte block, the target is scanned with the same
 * hash a byte at a time, each hit is extended forwards and backwards, and
 * the longest match whose copy command costs less than its bytes becomes a
 * copy, the bytes before it an insert (decision 186). The output is the
 * package's, byte for byte (the differential test checks it); what differs
 * is how it is written: into one reused Buffer sized for the worst case,
 * with ranges copied whole and the hash tables reused typed arrays, where the package
 * pushes every byte into a JavaScript array (48 of 175 s of the server's
 * CPU on bench S6). Applied by `fossil-apply.ts`.
 */
const NHASH = 16;
const DIGITS = Buffer.from('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~', 'latin1');
const NEWLINE = 0x0a;
const COPY = 0x40; // '@'
const COMMA = 0x2c;
const INSERT = 0x3a; // ':'
const END = 0x3b; // ';'
/** Candidate blocks tried per target position, as in Fossil. */
const CANDIDATES_PER_POSITION = 250;

/** Digits of `v` in the format's base 64 (at least one). */
function digitCount(v: number): number {
  let count = 1;
  for (let limit = 64; v >= limit; limit *= 64) count += 1;
  return count;
}

/**
 * The largest delta `createFossilDelta` can write for a target of `length`
 * bytes. Every copy is taken only when its command and the insert command
 * before it take no more bytes than the target bytes they stand for, so the
 * commands and inserts together take at most the target's length plus one
 * final insert's command; then the size line and the checksum command.
 */
export function maxFossilDeltaBytes(length: number): number {
  const sizeLine = digitCount(length) + 1;
  const finalInsertCommand = digitCount(length) + 1;
  const checksumCommand = 6 + 1; // 32 bits are at most 6 digits
  return sizeLine + length + finalInsertCommand + checksumCommand;
}

/** Fossil's 32-bit checksum of a delta's output (delta.c `checksum`). */
export function fossilChecksum(bytes: Uint8Array): number {
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let sum3 = 0;
  let z = 0;
  let n = bytes.length;
  while (n >= 4) {
    sum0 = (sum0 + bytes[z]!) | 0;
    sum1 = (sum1 + bytes[z + 1]!) | 0;
    sum2 = (sum2 + bytes[z + 2]!) | 0;
    sum3 = (sum3 + bytes[z + 3]!) | 0;
    z += 4;
    n -= 4;
  }
  sum3 = (((((sum3 + (sum2 << 8)) | 0) + (sum1 << 16)) | 0) + (sum0 << 24)) | 0;
  if (n === 3) sum3 = (sum3 + (bytes[z + 2]! << 8)) | 0;
  if (n >= 2) sum3 = (sum3 + (bytes[z + 1]! << 16)) | 0;
  if (n >= 1) sum3 = (sum3 + (bytes[z]! << 24)) | 0;
  return sum3 >>> 0;
}

/** The rolling hash of the NHASH bytes of `bytes` at `at`: its two 16-bit halves, `a` low and `b` high. */
function hashAt(bytes: Uint8Array, at: number): number {
  let a = 0;
  let b = 0;
  for (let i = 0; i < NHASH; i += 1) {
    const x = bytes[at + i]!;
    a = (a + x) & 0xffff;
    b = (b + (NHASH - i) * x) & 0xffff;
  }
  return (a | (b << 16)) >>> 0;
}

/**
 * Scratch space reused by every call (a call runs start to end without
 * yielding, so no two share it): the output buffer for the worst case and
 * the hash tables, grown when a larger input comes. Allocating them per
 * chunk was most of the encoder's garbage; the delta returned is a copy of
 * the bytes written.
 */
let scratch = Buffer.allocUnsafe(0);
let landmarkTable = new Int32Array(0);
let collideTable = new Int32Array(0);

export function createFossilDelta(source: Uint8Array, target: Uint8Array): Buffer {
  const bound = maxFossilDeltaBytes(target.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafe(Math.max(bound, 2 * scratch.length));
  const out = scratch;
  let pos = 0;
  const putInt = (value: number): void => {
    const count = digitCount(value);
    for (let i = count - 1; i >= 0; i -= 1) {
      out[pos + i] = DIGITS[value % 64]!;
      value = Math.floor(value / 64);
    }
    pos += count;
  };
  const putInsert = (from: number, to: number): void => {
    putInt(to - from);
    out[pos++] = INSERT;
    out.set(target.subarray(from, to), pos);
    pos += to - from;
  };
  const lenOut = target.length;
  const lenSrc = source.length;
  putInt(lenOut);
  out[pos++] = NEWLINE;

  if (lenSrc > NHASH) {
    // Each aligned block of the source (but the last when the source is a whole number of blocks, as in
    // Fossil) goes into a chained hash table: landmark[hash] is the latest block with that hash, collide[block]
    // the one before it.
    const nHash = Math.ceil(lenSrc / NHASH);
    if (landmarkTable.length < nHash) {
      landmarkTable = new Int32Array(Math.max(nHash, 2 * landmarkTable.length));
      collideTable = new Int32Array(landmarkTable.length);
    }
    const landmark = landmarkTable.fill(-1, 0, nHash);
    const collide = collideTable.fill(-1, 0, nHash);
    for (let i = 0; i < lenSrc - NHASH; i += NHASH) {
      const slot = hashAt(source, i) % nHash;
      collide[i / NHASH] = landmark[slot]!;
      landmark[slot] = i / NHASH;
    }

    let base = 0;
    while (base + NHASH < lenOut) {
      let bestCnt = 0;
      let bestOfst = 0;
      let bestLitsz = 0;
      const first = hashAt(target, base);
      let a = first & 0xffff;
      let b = first >>> 16;
      let i = 0; // trying to match a block against target[base + i]
      for (;;) {
        let limit = CANDIDATES_PER_POSITION;
        let block = landmark[((a | (b << 16)) >>> 0) % nHash]!;
        while (block >= 0 && limit-- > 0) {
          const iSrc = block * NHASH;
          // Forwards from source[iSrc] and target[base + i], backwards from the byte before each, not before
          // target[base].
          let x = iSrc;
          let y = base + i;
          while (x < lenSrc && y < lenOut && source[x] === target[y]) {
            x += 1;
            y += 1;
          }
          const forward = x - iSrc;
          let k = 1;
          while (k < iSrc && k <= i && source[iSrc - k] === target[base + i - k]) k += 1;
          k -= 1;
          // The package counts one byte fewer forwards and one more in the middle: the same length.
          const cnt = forward + k;
          const ofst = iSrc - k;
          const litsz = i - k;
          const cost = digitCount(litsz) + digitCount(cnt) + digitCount(ofst) + 3;
          if (cnt >= cost && cnt > bestCnt) {
            bestCnt = cnt;
            bestOfst = ofst;
            bestLitsz = litsz;
          }
          block = collide[block]!;
        }
        if (bestCnt > 0) {
          if (bestLitsz > 0) {
            putInsert(base, base + bestLitsz);
            base += bestLitsz;
          }
          base += bestCnt;
          putInt(bestCnt);
          out[pos++] = COPY;
          putInt(bestOfst);
          out[pos++] = COMMA;
          break;
        }
        if (base + i + NHASH >= lenOut) {
          // No match to the end: the rest is inserted.
          putInsert(base, lenOut);
          base = lenOut;
          break;
        }
        // Roll the window one byte on: target[base + i] leaves, target[base + i + NHASH] enters.
        const old = target[base + i]!;
        const next = target[base + i + NHASH]!;
        a = (a - old + next) & 0xffff;
        b = (b - NHASH * old + a) & 0xffff;
        i += 1;
      }
    }
    if (base < lenOut) putInsert(base, lenOut);
  } else {
    // A source this small cannot hold a block: the whole target is one insert.
    putInsert(0, lenOut);
  }
  putInt(fossilChecksum(target));
  out[pos++] = END;
  if (pos > bound) throw new Error(`fossil delta overran its bound (${pos} > ${bound})`);
  return Buffer.from(out.subarray(0, pos));
}
