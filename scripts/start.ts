/**
 * `npm start`: the server and one local agent together, on embedded
 * defaults (the server's own PostgreSQL and blobs under ./data, agent state under ./data/agent).
 * Output is prefixed per process; SIGINT/SIGTERM are forwarded; when either
 * process ends, the other is stopped and npm start exits with its code.
 *
 * Each child is node itself with tsx as a loader, not the tsx CLI: the CLI
 * runs the program in a grandchild and, when that does not acknowledge a
 * relayed signal within 60 ms (a loaded machine), SIGKILLs it and exits 143.
 * A signal sent here must reach the server and the agent themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AGENT_NODE_FLAGS } from '../client/src/node-flags.ts';
import { SERVER_NODE_FLAGS } from '../server/src/node-flags.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsxLoader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/esm/index.mjs')).href;

const serverPort = process.env.PORT ?? '8000';
const agentPort = process.env.CLIENT_UI_PORT ?? '8080';
const dashboardUrl = process.env.PUBLIC_URL ?? `http://localhost:${serverPort}`;
const setupUrl = `http://localhost:${agentPort}`;

const colour = process.stdout.isTTY ? (code: number, text: string) => `\x1b[${code}m${text}\x1b[0m` : (_code: number, text: string) => text;

function launch(name: string, code: number, script: string, env: Record<string, string>, nodeFlags: readonly string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeFlags, '--import', tsxLoader, script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = colour(code, `[${name}]`.padEnd(9));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  return child;
}

const server = launch('server', 36, 'server/src/main.ts', {
  PORT: serverPort,
  DATA_DIR: process.env.DATA_DIR ?? path.join(root, 'data'),
}, SERVER_NODE_FLAGS);
const agent = launch('agent', 35, 'client/src/main.ts', {
  CLIENT_UI_PORT: agentPort,
  AGENT_STATE_DIR: process.env.AGENT_STATE_DIR ?? path.join(root, 'data/agent'),
  // Pre-fills the setup form (never the password).
  SERVER_URL: process.env.SERVER_URL ?? `http://localhost:${serverPort}`,
  USERNAME: process.env.USERNAME_FOR_AGENT ?? process.env.ADMIN_USERNAME ?? 'admin',
}, AGENT_NODE_FLAGS);
const children = [server, agent];

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

async function announce(): Promise<void> {
  for (let i = 0; i < 600; i += 1) {
    if (exiting) return;
    if ((await answers(`http://127.0.0.1:${serverPort}/healthz`)) && (await answers(`http://127.0.0.1:${agentPort}/healthz`))) {
      const line = '─'.repeat(64);
      process.stdout.write(
        `\n${line}\n  Cairn is running\n` +
          `  Dashboard:         ${colour(1, dashboardUrl)}\n` +
          `  Agent setup page:  ${colour(1, setupUrl)}\n` +
          `  (the admin password is printed by the server on its first start)\n${line}\n\n`,
      );
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

let exiting = false;
const signalled = new Set<ChildProcess>();
const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/**
 * Asks every running child to stop, once each: a second SIGTERM would find
 * the child's handler already used and kill it mid-shutdown. After 15 s
 * whatever still runs is killed.
 */
function stopAll(signal: NodeJS.Signals): void {
  if (!exiting) {
    exiting = true;
    setTimeout(() => {
      for (const child of children) if (running(child)) child.kill('SIGKILL');
    }, 15_000).unref();
  }
  for (const child of children) {
    if (!running(child) || signalled.has(child)) continue;
    signalled.add(child);
    child.kill(signal);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stopAll(signal));

// npm start exits once both are gone: 0 when both stopped cleanly, else the first failure's code.
let exitCode = 0;
for (const [name, child] of [['server', server], ['agent', agent]] as const) {
  child.on('exit', (code, signal) => {
    if (code !== 0 && exitCode === 0) exitCode = code ?? 1;
    if (!exiting) process.stdout.write(`${name} exited (${signal ?? code}); stopping the rest\n`);
    stopAll('SIGTERM');
    if (!children.some(running)) process.exit(exitCode);
  });
}

void announce();
