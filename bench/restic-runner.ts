/**
 * restic, the reference: a local repository, `restic backup --json`, the
 * summary line parsed for what it added, peak RSS from GNU time (or /proc).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { diskUsage } from './disk-usage.ts';
import { pollPeakRss } from './process-memory.ts';
import type { Measurement, ScenarioId } from './scenarios.ts';

const GNU_TIME = '/usr/bin/time';
const PASSWORD = 'cairn-bench-restic';

export function resticVersion(): string | null {
  const result = spawnSync('restic', ['version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/** The fields of restic's `--json` summary line that the bench reads. */
interface ResticSummary {
  message_type: 'summary';
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  data_added: number;
  total_files_processed: number;
  total_bytes_processed: number;
  total_duration: number;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  peakRss: number | null;
}

export class ResticRepository {
  readonly repo: string;
  readonly #cacheDir: string;
  readonly #timeFile: string;

  /** `name` tells repositories apart when a scenario keeps its own (S6, S7). */
  constructor(workDir: string, name = 'restic') {
    this.repo = path.join(workDir, `${name}-repo`);
    this.#cacheDir = path.join(workDir, `${name}-cache`);
    this.#timeFile = path.join(workDir, `${name}-time.txt`);
  }

  #env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      RESTIC_PASSWORD: PASSWORD,
      RESTIC_REPOSITORY: this.repo,
      RESTIC_CACHE_DIR: this.#cacheDir,
    };
  }

  async init(): Promise<void> {
    await rm(this.repo, { recursive: true, force: true });
    await mkdir(this.#cacheDir, { recursive: true });
    const ran = await this.#run(['init'], false);
    if (ran.code !== 0) throw new Error(`restic init failed (${ran.code}): ${ran.stderr.slice(-2000)}`);
  }

  async #run(args: string[], measure: boolean, timeoutMs = 60 * 60_000): Promise<Ran> {
    const useTime = measure && existsSync(GNU_TIME);
    const command = useTime ? GNU_TIME : 'restic';
    const fullArgs = useTime ? ['-f', '%M', '-o', this.#timeFile, 'restic', ...args] : args;
    const started = performance.now();
    const child = spawn(command, fullArgs, { env: this.#env(), stdio: ['ignore', 'pipe', 'pipe'] });
    const poller = measure && !useTime && child.pid !== undefined ? pollPeakRss(child.pid) : null;
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (data: Buffer) => stdout.push(data));
    child.stderr.on('data', (data: Buffer) => {
      stderr = (stderr + data.toString('utf8')).slice(-20_000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;
    let peakRss = poller?.stop() ?? null;
    if (useTime) {
      const kb = Number((await readFile(this.#timeFile, 'utf8')).trim().split('\n').pop());
      peakRss = Number.isFinite(kb) ? kb * 1024 : null;
    }
    return { code, stdout: Buffer.concat(stdout).toString('utf8'), stderr, seconds, peakRss };
  }

  /** One `restic backup` of `source`; restic finds the previous snapshot of the same path as its parent. */
  async backup(scenario: ScenarioId, source: string): Promise<Measurement> {
    const ran = await this.#run(['backup', '--json', '--host', 'cairn-bench', source], true);
    const summary = ran.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { message_type?: string })
      .find((message): message is ResticSummary => message.message_type === 'summary');
    const usage = await diskUsage(this.repo);
    const base = { scenario, system: 'restic' as const, seconds: ran.seconds, storedBytes: usage.apparentBytes, storedAllocatedBytes: usage.allocatedBytes, resticPeakRss: ran.peakRss };
    if (ran.code !== 0 || summary === undefined) {
      return { ...base, ok: false, error: `restic backup exited ${ran.code}: ${ran.stderr.slice(-1000)}`, filesScanned: 0, bytesScanned: 0, bytesUploaded: 0 };
    }
    return {
      ...base,
      ok: true,
      filesScanned: summary.total_files_processed,
      bytesScanned: summary.total_bytes_processed,
      filesChanged: summary.files_new + summary.files_changed,
      bytesUploaded: summary.data_added,
    };
  }

  async remove(): Promise<void> {
    await rm(this.repo, { recursive: true, force: true });
    await rm(this.#cacheDir, { recursive: true, force: true });
  }
}
