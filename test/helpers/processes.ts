/**
 * Real processes for end-to-end tests and benchmarks: the server and the
 * agent started exactly as `npm run server` / `npm run agent` start them
 * (tsx on their main.ts), on free loopback ports, with their own env; or,
 * given another node binary that strips types itself, as the images start
 * them (node on main.ts, no tsx; decision 182).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AGENT_NODE_FLAGS } from '../../client/src/node-flags.ts';
import { SERVER_NODE_FLAGS } from '../../server/src/node-flags.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// tsx as a loader inside one node process (not the tsx CLI, which runs the
// script in a child): signals, kill() and peakRss() then reach the real process.
const TSX_LOADER = pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs')).href;
const SERVER_MAIN = path.join(REPO_ROOT, 'server/src/main.ts');
/** The agent's entry point; started with AGENT_NODE_FLAGS by startProcess. */
export const AGENT_MAIN = path.join(REPO_ROOT, 'client/src/main.ts');

/** The node binary a server or agent process runs under, and whether through tsx. */
export interface NodeRuntime {
  execPath: string;
  /** `process.version` of that binary, e.g. v24.22.3. */
  version: string;
  /** It runs main.ts with its own type stripping, without `--import tsx` (the images' way). */
  stripsTypes: boolean;
}

/** The node running this process; the sources through tsx, as `npm run server` does, whatever its version. */
export const HOST_NODE: NodeRuntime = { execPath: process.execPath, version: process.version, stripsTypes: false };

/**
 * The node binary at `execPath`: one that strips TypeScript types by default
 * (`process.features.typescript`: Node 22.18 and later, 23.6 and later) runs
 * the sources as the images do, without tsx; an older one through tsx.
 */
export function nodeRuntime(execPath: string): NodeRuntime {
  const resolved = path.resolve(execPath);
  const answer = execFileSync(resolved, ['-p', 'JSON.stringify([process.version, Boolean(process.features.typescript)])'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const [version, stripsTypes] = JSON.parse(answer) as [string, boolean];
  return { execPath: resolved, version, stripsTypes };
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

export interface ManagedProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote so far (stdout and stderr), for assertions and failure messages. */
  output(): string;
  /** Resolves when `pattern` appears in the output; rejects if the process exits first or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL right away (a crash). */
  kill(): Promise<void>;
  /** Peak resident set size so far in bytes (VmHWM), or null once exited. */
  peakRss(): Promise<number | null>;
}

export function startProcess(script: string, args: string[], env: Record<string, string>, cwd = REPO_ROOT, runtime: NodeRuntime = HOST_NODE): ManagedProcess {
  // The server and the agent run with their V8 flags, as package.json and the Dockerfiles start them.
  const nodeFlags = path.resolve(script) === SERVER_MAIN ? SERVER_NODE_FLAGS : path.resolve(script) === AGENT_MAIN ? AGENT_NODE_FLAGS : [];
  const loader = runtime.stripsTypes ? [] : ['--import', TSX_LOADER];
  const child = spawn(runtime.execPath, [...nodeFlags, ...loader, script, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let buffer = '';
  const listeners = new Set<() => void>();
  const onData = (data: Buffer) => {
    buffer += data.toString('utf8');
    if (buffer.length > 4_000_000) buffer = buffer.slice(-2_000_000);
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exited = false;
  const exit = once(child, 'exit').then(([code]) => {
    exited = true;
    for (const listener of listeners) listener();
    return code as number | null;
  });

  return {
    child,
    pid: child.pid ?? -1,
    output: () => buffer,
    waitForOutput(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = buffer.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          } else if (exited) {
            cleanup();
            reject(new Error(`process exited before printing ${pattern}:\n${buffer.slice(-4000)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}:\n${buffer.slice(-4000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (exited) return exit;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (exited) return;
      child.kill('SIGKILL');
      await exit;
    },
    async peakRss() {
      if (exited || child.pid === undefined) return null;
      const { readFile } = await import('node:fs/promises');
      try {
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        const match = status.match(/VmHWM:\s+(\d+) kB/);
        return match ? Number(match[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
  };
}

export interface ServerProcess extends ManagedProcess {
  url: string;
  port: number;
}

/**
 * Starts `server/src/main.ts` on a free port with the given env (DATA_DIR is
 * required; DATABASE_URL/S3_* optional) and waits until /healthz answers.
 */
export async function startServerProcess(env: Record<string, string>, runtime: NodeRuntime = HOST_NODE): Promise<ServerProcess> {
  if (env.DATA_DIR && !env.DATABASE_URL) await letPostgresThrough(env.DATA_DIR);
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const proc = startProcess(
    SERVER_MAIN,
    [],
    {
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
      PORT: String(port),
    },
    REPO_ROOT,
    runtime,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, proc);
  return Object.assign(proc, { url, port });
}

/**
 * As root the server's embedded PostgreSQL runs as user postgres, which must
 * pass through every parent of DATA_DIR; tests put DATA_DIR inside mkdtemp
 * directories (mode 0700), so those (below the temp dir only) get the
 * others' execute bit, as an operator would do for a real DATA_DIR.
 */
export async function letPostgresThrough(dataDir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { chmod, stat } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const top = path.resolve(tmpdir());
  for (let dir = path.dirname(path.resolve(dataDir)); dir.startsWith(`${top}${path.sep}`); dir = path.dirname(dir)) {
    const mode = (await stat(dir)).mode & 0o777;
    if ((mode & 0o001) === 0) await chmod(dir, mode | 0o001);
  }
}

/** Polls `url` until it answers 200, failing fast if the process dies. */
export async function waitForHttp(url: string, proc?: ManagedProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (proc && proc.child.exitCode !== null) {
      throw new Error(`process exited (${proc.child.exitCode}) before ${url} answered:\n${proc.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
