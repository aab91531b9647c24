import { mkdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './atomic-write.ts';

/** What the agent keeps between starts. The password is never part of it; the token lives in its own 0600 file. */
export interface AgentState {
  serverUrl: string;
  clientId: string;
  clientName: string;
  hostname: string;
  /** The server account that registered this agent (shown on the status page); '' when an enrollment key did. */
  username: string;
  /** How it registered: with an enrollment key it never registers again by itself (a revoked client stays revoked). */
  registeredWith: 'password' | 'enrollment-key';
  /** Local monitored paths chosen on the setup page (env mode takes them from MONITORED_PATHS instead). */
  monitoredPaths: string[];
  dashboardUrl: string;
  configuredAt: string;
  token: string;
}

const STATE_FILE = 'agent.json';
const TOKEN_FILE = 'token';

export function stateFiles(stateDir: string): { state: string; token: string; cache: string } {
  return {
    state: path.join(stateDir, STATE_FILE),
    token: path.join(stateDir, TOKEN_FILE),
    cache: path.join(stateDir, 'scan-cache.jsonl'),
  };
}

export async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
}

/** The saved state, or null when the agent was never set up (or the state is incomplete). */
export async function readAgentState(stateDir: string): Promise<AgentState | null> {
  const files = stateFiles(stateDir);
  let raw: string;
  let token: string;
  try {
    raw = await readFile(files.state, 'utf8');
    token = (await readFile(files.token, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = JSON.parse(raw) as Partial<Omit<AgentState, 'token'>>;
  if (typeof parsed.serverUrl !== 'string' || typeof parsed.clientId !== 'string' || token === '') return null;
  return {
    serverUrl: parsed.serverUrl,
    clientId: parsed.clientId,
    clientName: parsed.clientName ?? '',
    hostname: parsed.hostname ?? '',
    username: parsed.username ?? '',
    registeredWith: parsed.registeredWith === 'enrollment-key' ? 'enrollment-key' : 'password',
    monitoredPaths: Array.isArray(parsed.monitoredPaths) ? parsed.monitoredPaths : [],
    dashboardUrl: parsed.dashboardUrl ?? '',
    configuredAt: parsed.configuredAt ?? '',
    token,
  };
}

/** Token first (0600), then the state that points at it, each written atomically. */
export async function writeAgentState(stateDir: string, state: AgentState): Promise<void> {
  await ensureStateDir(stateDir);
  const files = stateFiles(stateDir);
  const { token, ...rest } = state;
  await writeFileAtomic(files.token, `${token}\n`, 0o600);
  await writeFileAtomic(files.state, `${JSON.stringify(rest, null, 2)}\n`, 0o600);
}

/** Forgets the scan cache, e.g. when the agent is pointed at another server or client. */
export async function removeScanCache(stateDir: string): Promise<void> {
  await unlink(stateFiles(stateDir).cache).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
