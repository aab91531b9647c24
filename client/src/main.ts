import { setFlagsFromString } from 'node:v8';
import dotenv from 'dotenv';
import { ConfigError, onStopSignal } from '@cairn/shared';
import { AgentRuntime, registrationFrom } from './agent/agent-runtime.ts';
import { envFilePath, loadAgentConfig, type AgentConfig } from './config/agent-config.ts';
import { createLogger, type Logger } from './logger.ts';
import { isAuthError, errorMessage, PermanentError } from './net/http-errors.ts';
import { runRestoreCommand } from './restore/restore-command.ts';
import { serverUrlsOf } from './net/server-urls.ts';
import { ensureStateDir, writeAgentState, type AgentState } from './state/agent-state.ts';

const USAGE = `Usage: cairn-agent            run the agent (setup page on :8080, or CLIENT_UI_ENABLED=false for env mode)
       cairn-agent restore ...  restore files from the server (see: cairn-agent restore --help)`;

/**
 * The heap grows by 30% over what survived a full collection, not V8's
 * default (decision 202, as the server's 178): a backup's batches leave
 * their records behind in the old generation, and by default V8 lets that
 * garbage double the heap before collecting it. Set here, once the modules
 * are loaded, so their loading is not collected at every step.
 */
const HEAP_GROWING_PERCENT = 30;
setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);

dotenv.config({ path: envFilePath(process.env), quiet: true });
const [command, ...rest] = process.argv.slice(2);

if (command === 'restore') {
  process.exitCode = await runRestoreCommand(rest, process.env);
} else if (command === '--help' || command === '-h' || command === 'help') {
  console.log(USAGE);
} else if (command !== undefined && command !== 'run') {
  console.error(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  process.exitCode = 2;
} else {
  await runAgent();
}

async function runAgent(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadAgentConfig(process.env);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  }
  const log = createLogger(config.logLevel);
  await ensureStateDir(config.stateDir);
  const runtime = new AgentRuntime(config, log);
  const state = await runtime.loadState();

  // The page always serves /healthz and the status; only the setup form is
  // limited to UI mode (env mode is configured from the environment alone).
  // Loaded here: restore never pays for Fastify and the templates.
  const { buildSetupServer } = await import('./setup/setup-server.ts');
  const app = await buildSetupServer(runtime, log);
  const address = await app.listen({ port: config.uiPort, host: config.uiHost });
  const shown = address.replace('0.0.0.0', 'localhost').replace('[::]', 'localhost');
  const closeUi = () => app.close();
  if (config.uiEnabled) {
    log.info({ url: shown, stateDir: config.stateDir }, `Cairn agent setup page on ${shown}`);
    if (state) await runtime.start(state);
    else log.info(`not set up yet: open ${shown} to connect this agent to a server`);
  } else {
    log.info({ url: shown, stateDir: config.stateDir }, `Cairn agent status page on ${shown} (configured from the environment)`);
    const ready = await envModeState(runtime, config, state, log);
    if (ready === null) {
      await app.close();
      process.exit(1);
    }
    await runtime.start(ready);
  }

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(0), 10_000);
    force.unref();
    Promise.all([closeUi(), runtime.stop()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  onStopSignal(shutdown);
}

/**
 * Env mode: reuse the saved token when it was issued by the same server for
 * the same client name; otherwise register with ENROLLMENT_KEY or
 * USERNAME/PASSWORD. Refused credentials end the process (exit 1); an
 * unreachable server is waited for.
 */
async function envModeState(runtime: AgentRuntime, config: AgentConfig, state: AgentState | null, log: Logger): Promise<AgentState | null> {
  const credentials = config.credentials;
  if (credentials === undefined) return null;
  if (state && state.clientName === config.clientName) {
    // The same server when the lists share a URL (replicas added or dropped, decision 152): keep the token, store the new list.
    if (state.serverUrl === credentials.serverUrl) return state;
    if (serverUrlsOf(state.serverUrl).some((url) => serverUrlsOf(credentials.serverUrl).includes(url))) {
      const updated = { ...state, serverUrl: credentials.serverUrl };
      await writeAgentState(config.stateDir, updated);
      log.info({ serverUrl: updated.serverUrl }, 'SERVER_URL lists other replicas of the same server; keeping this agent\'s registration');
      return updated;
    }
  }
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await runtime.register(registrationFrom(credentials, config.clientName, config.monitoredPaths));
    } catch (error) {
      if ('enrollmentKey' in credentials && error instanceof PermanentError) {
        // The server's message names the problem (revoked, expired, used, a name the key refuses); never the key itself.
        log.fatal({ serverUrl: credentials.serverUrl, clientName: config.clientName, err: errorMessage(error) }, 'the server refused ENROLLMENT_KEY; get a new key from the dashboard and start again');
        return null;
      }
      if (isAuthError(error)) {
        log.fatal({ serverUrl: credentials.serverUrl, username: 'username' in credentials ? credentials.username : '' }, 'the server refused USERNAME/PASSWORD; fix them and start again');
        return null;
      }
      const delay = Math.min(60_000, 2_000 * 2 ** attempt);
      log.error({ err: errorMessage(error), retryInMs: delay }, 'cannot register with the server; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
