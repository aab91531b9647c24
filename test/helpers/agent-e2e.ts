/**
 * Helpers for end-to-end tests of the agent: the agent process in env mode,
 * its run reports (read from its structured log), the agent API with the
 * agent's own token, and a small dashboard session (cookies + CSRF) for what
 * only the dashboard can do (central pre-commands, "back up now").
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_PREFIX } from '@cairn/shared';
import { AGENT_MAIN, startProcess, type ManagedProcess } from './processes.ts';
import { parsePack } from '../../server/src/storage/pack-format.ts';

export { AGENT_MAIN };
export const ADMIN_PASSWORD = 'e2e-admin-password';

export interface RunReport {
  runId: string;
  status: 'succeeded' | 'partial' | 'failed';
  filesScanned: number;
  filesChanged: number;
  filesDeleted: number;
  filesFailed: number;
  bytesScanned: number;
  bytesUploaded: number;
  error: string | null;
  durationMs: number;
}

export function startAgent(env: Record<string, string>): ManagedProcess {
  return startProcess(AGENT_MAIN, [], { LOG_LEVEL: 'info', BACKUP_INTERVAL: '3600', PING_INTERVAL: '3600', ...env });
}

export function envModeAgentEnv(serverUrl: string, stateDir: string, monitored: string[], extra: Record<string, string> = {}): Record<string, string> {
  return {
    CLIENT_UI_ENABLED: 'false',
    SERVER_URL: serverUrl,
    USERNAME: 'admin',
    PASSWORD: ADMIN_PASSWORD,
    MONITORED_PATHS: monitored.join(','),
    AGENT_STATE_DIR: stateDir,
    CLIENT_NAME: path.basename(stateDir),
    // Env mode still serves /healthz and the status page: on a free loopback port, never the default 8080.
    CLIENT_UI_HOST: '127.0.0.1',
    CLIENT_UI_PORT: '0',
    ...extra,
  };
}

/** Every finished run the agent logged so far. */
export function runReports(agent: ManagedProcess): RunReport[] {
  const reports: RunReport[] = [];
  for (const line of agent.output().split('\n')) {
    if (!line.includes('"msg":"backup run ')) continue;
    try {
      const parsed = JSON.parse(line) as RunReport & { msg: string };
      if (/^backup run (succeeded|partial|failed)$/.test(parsed.msg)) reports.push(parsed);
    } catch {
      // a partial line: the rest is still on its way
    }
  }
  return reports;
}

/** Waits until the agent has logged `count` finished runs; returns the last one. */
export async function waitForRuns(agent: ManagedProcess, count: number, timeoutMs = 100_000): Promise<RunReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reports = runReports(agent);
    if (reports.length >= count) return reports[count - 1] as RunReport;
    if (agent.child.exitCode !== null) throw new Error(`agent exited (${agent.child.exitCode}):\n${agent.output().slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`no run #${count} within ${timeoutMs} ms:\n${agent.output().slice(-4000)}`);
    await sleep(100);
  }
}

/** Starts an env-mode agent, waits for its first cycle (which starts at once), stops it. */
export async function runAgentOnce(env: Record<string, string>): Promise<{ report: RunReport; output: string }> {
  const agent = startAgent(env);
  try {
    const report = await waitForRuns(agent, 1);
    return { report, output: agent.output() };
  } finally {
    await agent.stop();
  }
}

export async function readAgentState(stateDir: string): Promise<{ serverUrl: string; clientId: string; token: string; dashboardUrl: string }> {
  const state = JSON.parse(await readFile(path.join(stateDir, 'agent.json'), 'utf8')) as { serverUrl: string; clientId: string; dashboardUrl: string };
  const token = (await readFile(path.join(stateDir, 'token'), 'utf8')).trim();
  return { ...state, token };
}

/** GET on the agent API with the agent's token. */
export async function agentApiGet<T>(serverUrl: string, token: string, route: string): Promise<T> {
  const response = await fetch(`${serverUrl}${API_PREFIX}${route}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/**
 * The chunks a disk blob store holds, read from the stores' own files: every
 * chunk each pack's index lists (DATA_DIR/blobs/packs/ab/<sha256>) and every
 * v1 whole-content object (DATA_DIR/blobs/ab/cd/<sha256>), each hash once,
 * sorted. Independent of the database, so a test sees what is really stored.
 */
export async function storedObjects(dataDir: string): Promise<string[]> {
  const root = path.join(dataDir, 'blobs');
  const found = new Set<string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile() || !/^[a-f0-9]{64}$/.test(entry.name)) continue;
    const relative = path.relative(root, path.join(entry.parentPath, entry.name));
    if (relative.startsWith('tmp')) continue;
    if (!relative.startsWith(`packs${path.sep}`)) {
      found.add(entry.name);
      continue;
    }
    for (const chunk of parsePack(`packs/${entry.name}`, await readFile(path.join(entry.parentPath, entry.name))).entries) found.add(chunk.sha256);
  }
  return [...found].sort();
}

/**
 * Damages a chunk's stored bytes in place, in whichever pack of a disk blob
 * store its index lists it: `change` edits the stored (possibly compressed)
 * bytes. Throws when no pack holds the chunk.
 */
export async function damageStoredChunk(dataDir: string, chunkSha256: string, change: (stored: Buffer) => void): Promise<void> {
  const root = path.join(dataDir, 'blobs', 'packs');
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile() || !/^[a-f0-9]{64}$/.test(entry.name)) continue;
    const file = path.join(entry.parentPath, entry.name);
    const bytes = await readFile(file);
    const found = parsePack(`packs/${entry.name}`, bytes).entries.find((e) => e.sha256 === chunkSha256);
    if (!found) continue;
    change(bytes.subarray(found.offset, found.offset + found.length));
    await writeFile(file, bytes);
    return;
  }
  throw new Error(`no pack under ${root} holds chunk ${chunkSha256}`);
}

/** A dashboard session over real HTTP: keeps cookies, fills in the CSRF token of the last page. */
export class DashboardSession {
  readonly #cookies = new Map<string, string>();
  #csrf = '';

  readonly baseUrl: string;
  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  /** A form POST whose fields repeat (a group of checkboxes). */
  async #requestList(method: 'POST', url: string, fields: [string, string][]): Promise<{ status: number; body: string; location: string | null }> {
    return this.#request(method, url, undefined, new URLSearchParams([['_csrf', this.#csrf], ...fields]));
  }

  async #request(method: 'GET' | 'POST', url: string, fields?: Record<string, string>, list?: URLSearchParams): Promise<{ status: number; body: string; location: string | null }> {
    const headers: Record<string, string> = { cookie: [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body: URLSearchParams | undefined = list;
    if (fields) body = new URLSearchParams({ _csrf: this.#csrf, ...fields });
    if (body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = this.baseUrl;
    }
    const response = await fetch(this.baseUrl + url, { method, redirect: 'manual', headers, ...(body ? { body } : {}) });
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';')[0] ?? '';
      const index = pair.indexOf('=');
      const value = pair.slice(index + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(pair.slice(0, index));
      else this.#cookies.set(pair.slice(0, index), value);
    }
    const text = await response.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token?.[1]) this.#csrf = token[1];
    return { status: response.status, body: text, location: response.headers.get('location') };
  }

  async login(username = 'admin', password = ADMIN_PASSWORD): Promise<void> {
    await this.#request('GET', '/login');
    const answer = await this.#request('POST', '/login', { username, password, next: '/' });
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`dashboard login failed: ${answer.status}`);
  }

  /** Creates an enrollment key on the dashboard's page and returns it (it is shown once). */
  async createEnrollmentKey(fields: { uses?: 'single' | 'multi'; expiresIn?: string; namePrefix?: string; description?: string } = {}): Promise<string> {
    await this.#request('GET', '/enrollment-keys');
    const answer = await this.#request('POST', '/enrollment-keys', { uses: 'single', expiresIn: '1d', namePrefix: '', description: 'e2e', ...fields });
    const key = /value="(cairn_enroll_[^"]+)" id="enrollment-key"/.exec(answer.body)?.[1];
    if (answer.status !== 200 || key === undefined) throw new Error(`creating an enrollment key failed: ${answer.status}\n${answer.body.slice(0, 2000)}`);
    return key;
  }

  /** The client page's configuration form (pre-commands: one per line, `[5s] cmd` sets a timeout). */
  async configureClient(
    clientId: string,
    fields: { monitoredPaths?: string; excludes?: string; preCommands?: string; backupInterval?: string; scheduleKind?: string; cron?: string; timeZone?: string; windowStart?: string; windowEnd?: string },
  ): Promise<void> {
    await this.#request('GET', `/clients/${clientId}`);
    const answer = await this.#request('POST', `/clients/${clientId}/config`, {
      monitoredPaths: '',
      excludes: '',
      preCommands: '',
      backupInterval: '1h',
      ...fields,
    });
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`saving the client config failed: ${answer.status}\n${answer.body.slice(0, 2000)}`);
  }

  /** The client page's alert settings form as shown, with `changes` (e.g. `'expectedFile.folders': '/dumps 26'`). */
  async saveAlertSettings(clientId: string, changes: Record<string, string>): Promise<void> {
    const page = (await this.#request('GET', `/clients/${clientId}`)).body;
    const form = page.slice(page.indexOf('id="alert-settings"'));
    const shown = Object.fromEntries(
      [...form.matchAll(/<input (?:type="checkbox" )?name="([a-zA-Z]+\.[a-zA-Z]+)" (?:value|inputmode)="[^"]*"(?: value="([^"]*)")?( checked)?/g)].map((m) => [m[1]!, m[2] ?? (m[3] ? 'on' : '')]),
    );
    const answer = await this.#request('POST', `/clients/${clientId}/alerts`, { ...shown, ...changes });
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`saving the alert settings failed: ${answer.status}\n${answer.body.slice(0, 2000)}`);
  }

  /** The signed-in user's id, from the top bar's link to their own page. */
  async ownUserId(): Promise<string> {
    const page = (await this.#request('GET', '/')).body;
    const id = /class="whoami"><a href="\/users\/([0-9a-f-]{36})/.exec(page)?.[1];
    if (id === undefined) throw new Error('no link to the own user page in the top bar');
    return id;
  }

  /** The user page's alert webhook form (URL, secret, ticked alert types). */
  async saveAlertWebhook(userId: string, url: string, secret: string, types: string[]): Promise<void> {
    await this.#request('GET', `/users/${userId}`);
    const answer = await this.#requestList('POST', `/users/${userId}/alert-webhook`, [['alertWebhookUrl', url], ['alertWebhookSecret', secret], ...types.map((type): [string, string] => ['alertWebhookTypes', type])]);
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`saving the alert webhook failed: ${answer.status}\n${answer.body.slice(0, 2000)}`);
  }

  /** Any page, as a signed-in browser would GET it (the CSRF token of a form on it is kept). */
  async get(url: string): Promise<{ status: number; body: string; location: string | null }> {
    return this.#request('GET', url);
  }

  /** A form POST from the page last fetched (its CSRF token filled in). */
  async post(url: string, fields: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
    return this.#request('POST', url, fields);
  }

  /** Any dashboard page, as HTML. */
  async page(url: string): Promise<string> {
    return (await this.#request('GET', url)).body;
  }

  /** "Verify now" on the Verify page; false when a verify run (maybe on another replica) holds the lock. */
  async startVerify(): Promise<boolean> {
    await this.#request('GET', '/verify');
    const answer = await this.#request('POST', '/verify', {});
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`starting a verify run failed: ${answer.status}`);
    return answer.location?.includes('verify-started') ?? false;
  }

  async requestRun(clientId: string): Promise<void> {
    await this.#request('GET', `/clients/${clientId}`);
    const answer = await this.#request('POST', `/clients/${clientId}/run`, {});
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`requesting a run failed: ${answer.status}`);
  }

  async revokeToken(clientId: string): Promise<void> {
    await this.#request('GET', `/clients/${clientId}`);
    const answer = await this.#request('POST', `/clients/${clientId}/token/revoke`, {});
    if (answer.status !== 302 && answer.status !== 303) throw new Error(`revoking the token failed: ${answer.status}`);
  }

  /** The client's status page: its settings and its latest runs with their pre-command output. */
  async clientPage(clientId: string): Promise<string> {
    return (await this.#request('GET', `/clients/${clientId}`)).body;
  }

  async clientLogs(clientId: string): Promise<string> {
    return (await this.#request('GET', `/clients/${clientId}/logs`)).body;
  }

  /** The alerts page, e.g. `?state=resolved&client=<id>`. */
  async alertsPage(query = ''): Promise<string> {
    return (await this.#request('GET', `/alerts${query}`)).body;
  }

  /** Acknowledges an open alert from the alerts page, as a person would. */
  async acknowledgeAlert(alertId: string): Promise<void> {
    await this.#request('GET', '/alerts');
    const answer = await this.#request('POST', `/alerts/${alertId}/acknowledge`, { back: '/alerts' });
    if (answer.status !== 303) throw new Error(`acknowledging the alert failed: ${answer.status}`);
  }

  /** The dashboard's versions page of one backed-up path. */
  async versionsPage(clientId: string, filePath: string): Promise<string> {
    return (await this.#request('GET', `/clients/${clientId}/versions?path=${encodeURIComponent(filePath)}`)).body;
  }
}

/** Direct and indirect children of `pid`, read from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = parentOf.get(ppid) ?? [];
    list.push(Number(entry));
    parentOf.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parentOf.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Peak resident set size (VmHWM) of the process and its children, the largest one; tsx runs the script in a child. */
export async function peakRssOfTree(proc: ManagedProcess): Promise<number> {
  let peak = 0;
  for (const pid of [proc.pid, ...(await descendants(proc.pid))]) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    if (match) peak = Math.max(peak, Number(match[1]) * 1024);
  }
  return peak;
}

/**
 * A real crash: SIGKILL to the process and everything below it. (tsx runs
 * the script in a child process, so killing only the process we spawned
 * would leave the server itself running.)
 */
export async function crash(proc: ManagedProcess): Promise<void> {
  for (const pid of [...(await descendants(proc.pid)), proc.pid]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await proc.kill();
}
