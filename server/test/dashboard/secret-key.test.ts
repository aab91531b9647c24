import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { resolveSecretKey } from '../../src/dashboard/secret-key.ts';

function capturingLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('resolveSecretKey', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('uses SECRET_KEY when it is set and writes nothing', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-secret-'));
    const { log, lines } = capturingLogger();
    const key = await resolveSecretKey(loadServerConfig({ DATA_DIR: dataDir, SECRET_KEY: 'k'.repeat(40) }), log);
    expect(key).toBe('k'.repeat(40));
    await expect(stat(path.join(dataDir, 'secret-key'))).rejects.toThrow(/ENOENT/);
    expect(lines).toEqual([]);
  });

  it('generates a key once under DATA_DIR (mode 0600), reuses it, and warns about replicas', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-secret-'));
    const config = loadServerConfig({ DATA_DIR: dataDir });
    const { log, lines } = capturingLogger();
    const first = await resolveSecretKey(config, log);
    const second = await resolveSecretKey(config, log);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toBe(first);
    const file = path.join(dataDir, 'secret-key');
    expect((await readFile(file, 'utf8')).trim()).toBe(first);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(lines).toHaveLength(2);
    expect(lines.every((line) => JSON.parse(line).level === 40 && /replicas/.test(JSON.parse(line).msg))).toBe(true);
  });
});
