import { createHash } from 'node:crypto';

/**
 * The seed of the gear table. Changing it (or the derivation below) changes
 * every cut point, so every chunk name: it is part of the storage format.
 */
export const GEAR_SEED = 'cairn-fastcdc-gear-v1';

/**
 * The 256 32-bit values of the gear hash, one per byte value: SHA-256 in
 * counter mode over the seed, block i = SHA-256(GEAR_SEED || uint32be(i))
 * for i = 0..31, each block read as eight big-endian uint32s. Stored as
 * Int32Array so the hot loop stays in 32-bit integer arithmetic.
 */
export function gearTable(seed: string = GEAR_SEED): Int32Array {
  const table = new Int32Array(256);
  const counter = Buffer.alloc(4);
  for (let block = 0; block < 32; block += 1) {
    counter.writeUInt32BE(block, 0);
    const digest = createHash('sha256').update(seed, 'utf8').update(counter).digest();
    for (let word = 0; word < 8; word += 1) table[block * 8 + word] = digest.readInt32BE(word * 4);
  }
  return table;
}

export const GEAR: Int32Array = gearTable();
