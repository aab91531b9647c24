import type { CacheStore } from '../backup/backup-cycle.ts';
import { readScanCache, writeScanCache, type ScanCache } from '../state/scan-cache.ts';

/** The scan cache file, read once and then kept in memory between cycles. */
export class FileCacheStore implements CacheStore {
  #cache: ScanCache | null = null;
  #loaded = false;

  private readonly file: string;
  private readonly clientId: string;
  constructor(
    file: string,
    clientId: string,
  ) {
    this.file = file;
    this.clientId = clientId;
  }

  async load(): Promise<ScanCache | null> {
    if (!this.#loaded) {
      this.#cache = await readScanCache(this.file, this.clientId);
      this.#loaded = this.#cache !== null;
    }
    return this.#cache;
  }

  async save(cache: ScanCache): Promise<void> {
    await writeScanCache(this.file, this.clientId, cache);
    this.#cache = cache;
    this.#loaded = true;
  }
}
