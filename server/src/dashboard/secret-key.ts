import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/server-config.ts';

/**
 * The key that signs session and CSRF cookies: SECRET_KEY when set, else one
 * generated once and kept at DATA_DIR/secret-key (mode 0600). A generated key
 * only works for a single replica, so that case logs a warning.
 */
export async function resolveSecretKey(config: ServerConfig, log: Logger): Promise<string> {
  if (config.secretKey) return config.secretKey;
  const file = path.join(config.dataDir, 'secret-key');
  const existing = await readKeyFile(file);
  if (existing) {
    log.warn({ file }, 'SECRET_KEY is not set: using the key generated in DATA_DIR; set SECRET_KEY to run several replicas');
    return existing;
  }
  await mkdir(config.dataDir, { recursive: true });
  try {
    // 'wx' fails if another process created it first; then that key wins.
    await writeFile(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const key = await readKeyFile(file);
  if (!key) throw new Error(`could not read the generated secret key at ${file}`);
  log.warn({ file }, 'SECRET_KEY is not set: generated one at DATA_DIR/secret-key; replicas need the same SECRET_KEY');
  return key;
}

async function readKeyFile(file: string): Promise<string | null> {
  try {
    const key = (await readFile(file, 'utf8')).trim();
    return key.length >= 32 ? key : null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
