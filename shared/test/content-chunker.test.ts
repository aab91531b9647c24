import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CHUNKING_THRESHOLD_BYTES,
  ChunkerParamsError,
  ContentChunker,
  DEFAULT_CHUNKER_PARAMS,
  GEAR,
  isChunkedSize,
  chunkLengths,
  cutPoints,
  splitIntoChunks,
  type ChunkerParams,
} from '../src/chunking/index.ts';

/** Deterministic pseudo-random bytes: AES-256-CTR keystream keyed by SHA-256(label), the same on every platform. */
function bytesFor(label: string, size: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** Dump-like text: numbered rows of a few columns, so the input is compressible and has repeats like a real dump. */
function rowsFor(label: string, rows: number): Buffer {
  const noise = bytesFor(label, rows * 4);
  const lines: string[] = [];
  for (let i = 0; i < rows; i += 1) lines.push(`${i}\t${noise.readUInt32LE(i * 4) % 100_000}\tname-${noise.readUInt16LE(i * 4) % 977}\t2026-12-0${i % 9}\n`);
  return Buffer.from(lines.join(''));
}

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function chunksOf(data: Buffer, params: ChunkerParams): Buffer[] {
  let start = 0;
  return cutPoints(data, params).map((end) => data.subarray(start, (start = end)));
}

/** Splits data into pieces of 0..maxPiece bytes, sizes drawn from a label's bytes, so every run splits the same way. */
function randomPieces(data: Buffer, label: string, maxPiece: number): Buffer[] {
  const draws = 65_536;
  const sizes = bytesFor(label, 4 * draws);
  const pieces: Buffer[] = [];
  let offset = 0;
  for (let i = 0; offset < data.length; i += 1) {
    const size = sizes.readUInt32LE((i % draws) * 4) % (maxPiece + 1); // 0 included: empty pieces must be harmless
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

const SMALL: ChunkerParams = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

describe('gear table', () => {
  it('is derived from the documented seed, so it is the same everywhere', () => {
    expect(GEAR.length).toBe(256);
    const bigEndian = Buffer.alloc(1024);
    GEAR.forEach((value, i) => bigEndian.writeInt32BE(value, i * 4));
    expect(sha(bigEndian)).toBe('f772c03ffff294b843f91c24883559f4fb39ec89dd488e92fdd6a5c134165127');
    const first = createHash('sha256').update('cairn-fastcdc-gear-v1').update(Buffer.from([0, 0, 0, 0])).digest();
    expect(GEAR[0]).toBe(first.readInt32BE(0));
    expect(GEAR[7]).toBe(first.readInt32BE(28));
  });
});

describe('content chunker: golden cut points', () => {
  it('cuts 192 KiB of pseudo-random bytes at the committed offsets into the committed chunks', () => {
    const data = bytesFor('cairn-chunker-golden-1', 192 * 1024);
    expect(cutPoints(data, SMALL)).toEqual(GOLDEN_RANDOM_OFFSETS);
    expect(chunksOf(data, SMALL).map(sha)).toEqual(GOLDEN_RANDOM_SHA256);
  });

  it('cuts dump-like text at the committed offsets', () => {
    const data = rowsFor('cairn-chunker-golden-2', 8000);
    expect(sha(data)).toBe(GOLDEN_ROWS_INPUT_SHA256);
    expect(cutPoints(data, SMALL)).toEqual(GOLDEN_ROWS_OFFSETS);
  });

  it('cuts a run of zeros (no content to find a cut in) at maxSize', () => {
    const data = Buffer.alloc(100_000);
    expect(chunkLengths(data, SMALL)).toEqual(GOLDEN_ZEROS_LENGTHS);
  });
});

describe('content chunker: properties', () => {
  const data = bytesFor('cairn-chunker-properties', 2 * 1024 * 1024);

  it('gives the same cuts for any way of feeding the bytes', () => {
    for (const [label, maxPiece] of [['a', 1], ['b', 7], ['c', 1000], ['d', 5000], ['e', 70_000]] as const) {
      const input = maxPiece === 1 ? data.subarray(0, 100_000) : data;
      const expected = cutPoints(input, SMALL);
      const chunker = new ContentChunker(SMALL);
      const lengths: number[] = [];
      for (const piece of randomPieces(input, label, maxPiece)) lengths.push(...chunker.update(piece));
      lengths.push(...chunker.final());
      let offset = 0;
      expect(lengths.map((l) => (offset += l)), `pieces of up to ${maxPiece} bytes`).toEqual(expected);
    }
  });

  it('keeps every chunk within [minSize, maxSize], the last within (0, maxSize]', () => {
    for (const params of [SMALL, { minSize: 64, avgSize: 256, maxSize: 300 }, { minSize: 4096, avgSize: 4096, maxSize: 4096 }]) {
      const lengths = chunkLengths(data, params);
      expect(lengths.reduce((a, b) => a + b, 0)).toBe(data.length);
      const last = lengths.pop() as number;
      expect(last).toBeGreaterThan(0);
      expect(last).toBeLessThanOrEqual(params.maxSize);
      for (const length of lengths) {
        expect(length).toBeGreaterThanOrEqual(params.minSize);
        expect(length).toBeLessThanOrEqual(params.maxSize);
      }
    }
  });

  it('gathers chunk sizes around the average (normalized chunking)', () => {
    const lengths = chunkLengths(data, SMALL);
    const mean = data.length / lengths.length;
    expect(mean).toBeGreaterThan(SMALL.avgSize * 0.75);
    expect(mean).toBeLessThan(SMALL.avgSize * 1.5);
    const forced = lengths.filter((l) => l === SMALL.maxSize).length;
    expect(forced / lengths.length).toBeLessThan(0.01);
  });

  it('resynchronises after an insertion or a deletion near the start: later chunks are unchanged', () => {
    const original = chunksOf(data, SMALL).map(sha);
    for (const edited of [
      Buffer.concat([data.subarray(0, 5000), Buffer.from('an inserted line of text\n'), data.subarray(5000)]),
      Buffer.concat([data.subarray(0, 5000), data.subarray(5100)]),
    ]) {
      const after = chunksOf(edited, SMALL).map(sha);
      const kept = new Set(original);
      const changed = after.filter((h) => !kept.has(h));
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.length).toBeLessThanOrEqual(3);
      // Everything from the fourth chunk on is the same list of chunks.
      expect(after.slice(-(original.length - 4))).toEqual(original.slice(4));
    }
  });

  it('resynchronises in dump-like text when a row in the middle changes length', () => {
    const rows = rowsFor('cairn-chunker-rows', 40_000);
    const at = rows.indexOf('\n20000\t') + 1;
    const edited = Buffer.concat([rows.subarray(0, at), Buffer.from('20000\t1\tan edited row, longer than before\t2026-12-01\n'), rows.subarray(rows.indexOf('\n', at) + 1)]);
    const before = new Set(chunksOf(rows, SMALL).map(sha));
    const after = chunksOf(edited, SMALL).map(sha);
    expect(after.filter((h) => !before.has(h)).length).toBeLessThanOrEqual(2);
  });

  it('treats empty and tiny inputs as no chunk or one chunk', () => {
    expect(cutPoints(Buffer.alloc(0), SMALL)).toEqual([]);
    for (const size of [1, 63, SMALL.minSize - 1, SMALL.minSize, SMALL.minSize + 1]) {
      expect(chunkLengths(data.subarray(0, size), SMALL)).toEqual([size]);
    }
    const chunker = new ContentChunker(SMALL);
    expect(chunker.update(Buffer.alloc(0))).toEqual([]);
    expect(chunker.final()).toEqual([]);
  });

  it('is ready for a new stream after final()', () => {
    const chunker = new ContentChunker(SMALL);
    chunker.update(data.subarray(0, 12345));
    chunker.final();
    expect([...chunker.update(data), ...chunker.final()]).toEqual(chunkLengths(data, SMALL));
  });

  it('streams chunks as buffers with the same bytes as the one-shot cuts', async () => {
    const pieces = randomPieces(data, 'stream', 40_000);
    const streamed: Buffer[] = [];
    for await (const chunk of splitIntoChunks(pieces, SMALL)) streamed.push(Buffer.from(chunk));
    expect(streamed.map(sha)).toEqual(chunksOf(data, SMALL).map(sha));
    expect(Buffer.concat(streamed).equals(data)).toBe(true);
    const none: Buffer[] = [];
    for await (const chunk of splitIntoChunks([Buffer.alloc(0)], SMALL)) none.push(chunk);
    expect(none).toEqual([]);
  });

  it('refuses unusable parameters, naming the one at fault', () => {
    expect(() => new ContentChunker({ minSize: 16, avgSize: 4096, maxSize: 16384 })).toThrow(/minSize must be at least 64/);
    expect(() => new ContentChunker({ minSize: 1024, avgSize: 5000, maxSize: 16384 })).toThrow(/avgSize must be a power of two/);
    expect(() => new ContentChunker({ minSize: 8192, avgSize: 4096, maxSize: 16384 })).toThrow(/minSize <= avgSize <= maxSize/);
    expect(() => new ContentChunker({ minSize: 1024, avgSize: 4096, maxSize: 1.5 })).toThrow(ChunkerParamsError);
  });
});

// Golden values: computed once by this implementation and committed. A change here changes every
// chunk name Cairn stores, so it needs a new gear seed or a format version, never a quiet update.
const GOLDEN_RANDOM_OFFSETS = [
  6962, 12709, 15787, 18797, 23581, 27848, 31950, 36803, 41281, 45286, 49562, 54109,
  62495, 66882, 71542, 75399, 79551, 84008, 88241, 90406, 97559, 102105, 107892, 110754,
  115169, 119900, 125399, 133047, 137776, 141981, 146208, 150396, 154899, 156249, 166948, 172581,
  176703, 181325, 183562, 188717, 193024, 196608,
];
const GOLDEN_RANDOM_SHA256 = [
  '6e62d3c958c29c2cfe68527487f40642c2f78993fc212957d134d15b6dddd376',
  '770f20384282c3407177efb7fb40b3d9452838d47f6f84c8bb4145dc2a0ae7b3',
  '84f8ba2e13375ad0df9665998c73bb373af1adb876e76b155f69ad0b829f4ec6',
  '5b7228e9282c9711cec51088906bc26f0d972497996e074e9461058127d6839e',
  '335f8030b78174066417589655c0d4b99884d95dc3ee9c142121a4f097c47053',
  '466565c38707dc9ed07868b227399656ec8182329c709cb6248c312980810065',
  '975e49d245872dfa3eb56c7a5c03616de7656e04a4cc406922a53e33e24c9e9f',
  '83d1d9ac7fc20de165f45f46f035ada068502a6edc31e85151dd672b1534322e',
  '529458a7b7e17ad89b05a301bc89c3d1aaae558941e5b0cd2a992c8169fcf568',
  'ff346cd8fde7d884487bd099569aacfbd4fb8d6e533d659c36c47f203de4edf1',
  '241cfe770a81c0f49e4c6d1cec939ba1b668308cd1b1d8b379a72cba4b64ce63',
  '32b64e27f95b7689b7805e92c200505acc61e93d78e3f6d35172c5655116f759',
  '6eb75093d7f0448d75844f7e389167b3fe74526d333e17ed4b151d06fec72127',
  '784f3084fc1c670abd61c06c16d8bb8279c531d5aef6c55ada81702e62516197',
  'e39e65bd9e70bbd61e4dbceb66490ea1dd2b4bfab8140d9ab7ad4ef2cdfb2c3b',
  '05306d58410a6f0a0f62304d73dbedc532830268046d3ecfc51dfe6e244b5559',
  '2e6eaf1b13a7d5c1ef3afcde32e0ac77aaa81a38268ea5b7592654e42ec0f983',
  '6a4c122d52b353a34e95fa5e55eced1b1c9fdd2df9b3b78af6e33b77edd7f993',
  '4374fff90c888037e3ce419336254b04b5ecee0251e6f2f7178ef443d126d630',
  'f19ba70baacebbf7ab7ff9d12160b4e70639faab82bc7c31d83684b714404223',
  'f8c8ba13ebcc82835b872b1dad99f5cbeec82a7f5fd94921c563cd4c98040cf6',
  'cc252ea811bae7984f3765e2ea36213bd5332eb78d6a1b503c0b8c5695429f6f',
  'd338ba1a8f9eb4937f7b4cb962095217b4a260cc1b6e8a7b09f69985df289141',
  '6373ce553094f230bccb088a02dd568788cdab3ac6d87516d23de040c778cd88',
  '261e6e21e405cb03dd27b99eb140e8caf7c16eb24888440037129e2160b54b8d',
  '26e73bb211f91b4a05276ef170ffdf10cca98e040ed79ac656d61b3b54507a0d',
  '0b8ad15e43a7baa260dd89a8ad5a5559a66be0822fdb5e33099f17a17ccc77dd',
  'b964f54d19741c5b02543c473d9d7e33d5097c295d6f296960cde4efb940b63e',
  'cddc6c75690817469198b6c05ccfaffe455a9970dcb10db92047e2e41138a6c0',
  'eb108c7441bd515a8d40fd3227667965bfdda5d8a425f20b5409972e9d887412',
  '8345112d96f5749085ac0f1385302bbaa3566068d488d6ccf68eaa11c5817760',
  'e476e6ff5aa123a35b6ce393762eb8af389cb5b542b0b77f90c514348357ab9f',
  'cef366f89b637bcd3ff640b7b5a74f7c7fda582c7d643249634be53d7c6714c3',
  '23a95494fd71a2d146778b7da01635ef943e7382cc6977eba27c3ba9b2d15c3e',
  '61e49a0d8027751e155b55468d0e21eea3543b493913a749b5f9f923b321eaa4',
  '5e8a6ce22a0bee65bcef9fe5989e84a9075fdd0702a6d256e0a46b7d6451deb4',
  'eabc71e048cfe40c8a21494175ad4979e4e48939fa8e951eba8c499ac09e6e8e',
  '0fdd4016f334fcecf2ac377c35fb81cc0e295ee308078636ccf99e83edfcf82b',
  '46ea615ec58f764e28d9bd01fa9f2112a0c565fdf108968e2a76acaead8a1e93',
  '2c52a183c7b3bd52b2e102d7c3fa12d32c8a76382b3245c433b26aedc59db517',
  '20ecdd51cc13e69fe9bd30e4f38854755be8228d7d04e1d48ed8c0fd06cca0de',
  '95b547aa257c157f99103d9df27df53bdee75fdd858c8c1f8e682a20c1f5090c',
];
const GOLDEN_ROWS_INPUT_SHA256 = '0128b086d5f209bcb76c0c3c2ab851890bf2c4ef5750d76606ed4fe87453c82e';
const GOLDEN_ROWS_OFFSETS = [
  4382, 8708, 13034, 18178, 23034, 26789, 31672, 36963, 39666, 44920, 46422, 51437,
  56805, 61805, 65945, 67315, 72719, 73846, 77677, 79933, 84519, 85770, 91108, 95417,
  99102, 104374, 105606, 110465, 114775, 118966, 123569, 130082, 134523, 140480, 144754, 152367,
  153763, 159111, 164356, 169968, 175026, 180672, 187503, 191998, 196342, 200997, 205169, 206565,
  209481, 211399, 213432, 215694, 221144, 225425, 229950, 233334, 237589, 244138, 245127,
];
const GOLDEN_ZEROS_LENGTHS = [16384,  16384,  16384,  16384,  16384,  16384,  1696];

describe('chunking policy', () => {
  it('uses valid default parameters', () => {
    expect(() => new ContentChunker(DEFAULT_CHUNKER_PARAMS)).not.toThrow();
  });

  it('stores files up to the threshold as one chunk and cuts larger ones', () => {
    expect(isChunkedSize(0)).toBe(false);
    expect(isChunkedSize(CHUNKING_THRESHOLD_BYTES)).toBe(false);
    expect(isChunkedSize(CHUNKING_THRESHOLD_BYTES + 1)).toBe(true);
  });

  it('cuts with the default parameters at the committed offsets (they are part of the storage format)', () => {
    expect(cutPoints(bytesFor('cairn-chunker-golden-default', 4 * 1024 * 1024), DEFAULT_CHUNKER_PARAMS)).toEqual(GOLDEN_DEFAULT_OFFSETS);
  });
});
const GOLDEN_DEFAULT_OFFSETS = [
  107224, 181805, 249272, 305570, 361840, 436514, 510217, 611644, 679320, 736103,
  817712, 878845, 947008, 1013386, 1086486, 1182390, 1272257, 1369952, 1441198, 1508340,
  1617119, 1690903, 1761895, 1841662, 1927059, 2022292, 2109381, 2178604, 2253460, 2346208,
  2414476, 2480373, 2588338, 2662597, 2760871, 2829390, 2901233, 2971477, 3048170, 3129841,
  3200100, 3278263, 3301492, 3384840, 3472230, 3553571, 3621950, 3736023, 3804027, 3903916,
  3977528, 4062395, 4157440, 4194304,
];
