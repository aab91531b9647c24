/**
 * Puts backup data on a real server the way the agent does: register, start
 * a run, ask what is missing, upload it as multipart, send the changes,
 * finish. Plain fetch against the agent API, no shortcuts into the database.
 */
import { API_PREFIX, sha256Hex, type FileUpsert, type PreCommandResult, type RegisterResponse } from '@cairn/shared';

export interface AgentFile {
  path: string;
  content?: string | Buffer;
  /** Makes a symlink entry instead of a file. */
  linkTarget?: string;
  /** Makes a directory entry instead of a file. */
  directory?: true;
  mode?: number;
  mtimeMs?: number;
  uid?: number;
  gid?: number;
  hardlinkGroup?: string;
}

export class TestAgent {
  readonly baseUrl: string;
  readonly clientId: string;
  readonly token: string;
  private constructor(
    baseUrl: string,
    clientId: string,
    token: string,
  ) {
    this.baseUrl = baseUrl;
    this.clientId = clientId;
    this.token = token;
  }

  static async register(baseUrl: string, username: string, password: string, clientName: string, hostname = 'host.example'): Promise<TestAgent> {
    const response = await fetch(`${baseUrl}${API_PREFIX}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password, clientName, hostname, agentVersion: 'test' }),
    });
    if (response.status !== 200) throw new Error(`register: ${response.status} ${await response.text()}`);
    const body = (await response.json()) as RegisterResponse;
    return new TestAgent(baseUrl, body.clientId, body.token);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.baseUrl}${API_PREFIX}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** A heartbeat; `extra` adds fields, e.g. a `localConfig` report. */
  async ping(extra: Record<string, unknown> = {}): Promise<{ runRequested: boolean }> {
    return this.call('POST', '/ping', { state: 'idle', ...extra });
  }

  /** A raw agent API request with this agent's token: the status and the parsed body, whatever the status. */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${this.baseUrl}${API_PREFIX}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Sends log lines stamped with the agent's clock: now, unless an entry sets `at`. */
  async sendLogs(entries: { level: 'debug' | 'info' | 'warn' | 'error'; message: string; at?: string }[]): Promise<void> {
    await this.call('POST', '/logs', { entries: entries.map((e) => ({ ...e, at: e.at ?? new Date().toISOString() })) });
  }

  /** One complete backup run: uploads what the server lacks, upserts `files`, deletes `deletes`. */
  async backup(
    files: AgentFile[],
    options: { deletes?: string[]; status?: 'succeeded' | 'partial' | 'failed'; preCommands?: PreCommandResult[] } = {},
  ): Promise<string> {
    const { runId } = await this.call<{ runId: string }>('POST', '/runs', { trigger: 'schedule' });
    const contents = new Map<string, Buffer>();
    for (const file of files) {
      if (file.linkTarget === undefined && !file.directory) {
        const bytes = Buffer.from(file.content ?? '');
        contents.set(sha256Hex(bytes), bytes);
      }
    }
    const { missing } = await this.call<{ missing: string[] }>('POST', '/contents/missing', { hashes: [...contents.keys()] });
    if (missing.length > 0) {
      const form = new FormData();
      for (const sha of missing) form.append(sha, new Blob([contents.get(sha)!]), sha);
      const response = await fetch(`${this.baseUrl}${API_PREFIX}/contents?runId=${runId}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}` },
        body: form,
      });
      if (response.status !== 200) throw new Error(`upload: ${response.status} ${await response.text()}`);
    }
    const upserts: FileUpsert[] = files.map((file): FileUpsert => {
      const owner = { ...(file.uid !== undefined ? { uid: file.uid } : {}), ...(file.gid !== undefined ? { gid: file.gid } : {}) };
      const mtimeMs = file.mtimeMs ?? Date.now();
      if (file.directory) return { path: file.path, kind: 'directory', sha256: null, size: 0, mtimeMs, mode: file.mode ?? 0o40755, ...owner };
      if (file.linkTarget !== undefined) {
        return { path: file.path, kind: 'symlink', sha256: null, size: 0, mtimeMs, mode: file.mode ?? 0o120777, linkTarget: file.linkTarget, ...owner };
      }
      return {
        path: file.path,
        kind: 'file',
        sha256: sha256Hex(Buffer.from(file.content ?? '')),
        size: Buffer.byteLength(file.content ?? ''),
        mtimeMs,
        mode: file.mode ?? 0o100644,
        ...owner,
        ...(file.hardlinkGroup !== undefined ? { hardlinkGroup: file.hardlinkGroup } : {}),
      };
    });
    await this.call('POST', `/runs/${runId}/changes`, { upserts, deletes: options.deletes ?? [] });
    const bytesUploaded = missing.reduce((sum, sha) => sum + contents.get(sha)!.length, 0);
    await this.call('POST', `/runs/${runId}/finish`, {
      status: options.status ?? 'succeeded',
      stats: {
        filesScanned: files.length,
        filesChanged: files.length,
        filesDeleted: options.deletes?.length ?? 0,
        filesFailed: 0,
        bytesScanned: [...contents.values()].reduce((sum, b) => sum + b.length, 0),
        bytesUploaded,
      },
      preCommands: options.preCommands ?? [],
      ...(options.status === 'failed' ? { error: 'pre-command failed' } : {}),
    });
    return runId;
  }
}
