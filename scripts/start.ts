/**
 * `npm start`: the server and one local agent together, on embedded
 * defaults (PGlite and blobs under ./data, agent state under ./data/agent).
 * Output is prefixed per process; SIGINT/SIGTERM are forwarded; when either
 * process ends, the other is stopped and npm start exits with its code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsx = path.join(root, 'node_modules/tsx/dist/cli.mjs');

const serverPort = process.env.PORT ?? '8000';
const agentPort = process.env.CLIENT_UI_PORT ?? '8080';
const dashboardUrl = process.env.PUBLIC_URL ?? `http://localhost:${serverPort}`;
const setupUrl = `http://localhost:${agentPort}`;

const colour = process.stdout.isTTY ? (code: number, text: string) => `\x1b[${code}m${text}\x1b[0m` : (_code: number, text: string) => text;

function launch(name: string, code: number, script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [tsx, script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = colour(code, `[${name}]`.padEnd(9));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  return child;
}

const server = launch('server', 36, 'server/src/main.ts', {
  PORT: serverPort,
  DATA_DIR: process.env.DATA_DIR ?? path.join(root, 'data'),
});
const agent = launch('agent', 35, 'client/src/main.ts', {
  CLIENT_UI_PORT: agentPort,
  AGENT_STATE_DIR: process.env.AGENT_STATE_DIR ?? path.join(root, 'data/agent'),
  // Pre-fills the setup form (never the password).
  SERVER_URL: process.env.SERVER_URL ?? `http://localhost:${serverPort}`,
  USERNAME: process.env.USERNAME_FOR_AGENT ?? process.env.ADMIN_USERNAME ?? 'admin',
});
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
function stopAll(signal: NodeJS.Signals): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    exiting = true;
    stopAll(signal);
  });
}

for (const [name, child] of [['server', server], ['agent', agent]] as const) {
  child.on('exit', (code, signal) => {
    if (!exiting) process.stdout.write(`${name} exited (${signal ?? code}); stopping the rest\n`);
    exiting = true;
    stopAll('SIGTERM');
    const others = children.filter((c) => c !== child && c.exitCode === null && c.signalCode === null);
    const done = () => process.exit(code ?? (signal ? 1 : 0));
    if (others.length === 0) done();
    else {
      const force = setTimeout(() => {
        stopAll('SIGKILL');
        done();
      }, 10_000);
      for (const other of others) other.once('exit', () => {
        if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) {
          clearTimeout(force);
          done();
        }
      });
    }
  });
}

void announce();
