import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import {
  API_PREFIX,
  ASSEMBLE_CONTENT_TYPE,
  type AssembleResponse,
  STORED_CONTENT_DAMAGED,
  type ChangesRequest,
  type ChangesResponse,
  type ClientConfig,
  type ErrorBody,
  type FilesPage,
  type FilesQuery,
  type FinishRunRequest,
  type LogsRequest,
  type MissingRequest,
  type MissingResponse,
  type OkResponse,
  type PingRequest,
  type PingResponse,
  type ProgressRequest,
  type EnrollRequest,
  type RegisterRequest,
  type RegisterResponse,
  type StartRunRequest,
  type StartRunResponse,
  type UploadQuery,
  type UploadResponse,
  type VersionsResponse,
  type RestoreJobFinish,
  type RestoreJobProgress,
  type RestoreJobProgressAnswer,
  type RestoreJobSpec,
  LIMITS,
} from '@cairn/shared';
import { PermanentError, RetryableError, StoredContentDamagedError, errorMessage } from './http-errors.ts';
import { DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from './retry-policy.ts';
import { formatServerUrls, serverUrlsOf } from './server-urls.ts';

type Method = 'GET' | 'POST';

export interface ApiClientOptions {
  /** One server URL, or several replicas' separated by commas (decision 152). */
  serverUrl: string;
  token?: string;
  retry?: RetryPolicy;
  onRetry?: (what: string, error: RetryableError, attempt: number, delayMs: number) => void;
  /** Told when a request's failure moved the client from one of several server URLs to the next. */
  onFailover?: (from: string, to: string, error: RetryableError) => void;
}

/** Answers that say "this replica cannot serve now", unlike a 500 from the application: the proxy's or the server's own. */
const REPLICA_UNAVAILABLE = new Set([502, 503, 504]);

/**
 * The agent's side of protocol v1 (shared/src/protocol.ts), over undici with
 * keep-alive. Every call sorts failures into RetryableError (network, 5xx,
 * 429) and PermanentError (other 4xx); JSON calls are retried with backoff.
 * The one 5xx that is not retried: StoredContentDamagedError, the server's
 * report that its stored copy of a content is bad.
 *
 * With several server URLs (replicas of one server on one database and
 * store), requests go to one of them; a request that finds it unreachable
 * (refused, reset, timed out) or answered 502/503/504 moves the client on to
 * the next, and its retry goes there. Every later request stays on the new
 * one, so a run goes on where it was: its id and everything it sent live in
 * the shared database.
 */
export class ApiClient {
  /** The URL list as given, normalised (what the agent stores). */
  readonly serverUrl: string;
  readonly #urls: string[];
  #current = 0;
  readonly #onFailover: ApiClientOptions['onFailover'];
  readonly #token: string | undefined;
  readonly #dispatcher: Agent;
  readonly #retry: RetryPolicy;
  readonly #onRetry: ApiClientOptions['onRetry'];

  constructor(options: ApiClientOptions) {
    this.#urls = serverUrlsOf(options.serverUrl);
    if (this.#urls.length === 0) this.#urls = [options.serverUrl.replace(/\/+$/, '')];
    this.serverUrl = formatServerUrls(this.#urls);
    this.#onFailover = options.onFailover;
    this.#token = options.token;
    this.#retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.#onRetry = options.onRetry;
    // No body timeout: a large upload or download may legitimately stay busy for a long time.
    this.#dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 8, bodyTimeout: 0, headersTimeout: 600_000 });
  }

  /** The URL requests go to now. */
  get activeUrl(): string {
    return this.#urls[this.#current] as string;
  }

  /** After a failure on `index`'s URL: the next one, unless another request already moved on. */
  #failOver(index: number, error: RetryableError): RetryableError {
    if (this.#urls.length > 1 && index === this.#current) {
      this.#current = (index + 1) % this.#urls.length;
      this.#onFailover?.(this.#urls[index] as string, this.activeUrl, error);
    }
    return error;
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  register(body: RegisterRequest): Promise<RegisterResponse> {
    // Wrong credentials are a 401: permanent. Only network trouble is retried, briefly, so the setup page answers fast.
    return this.#json('POST', '/register', body, { attempts: 2, baseDelayMs: 300, maxDelayMs: 1000 });
  }

  /** Registration with an enrollment key: a bad, used, expired or revoked key is a 401, a name the key refuses a 400/409. */
  enroll(body: EnrollRequest): Promise<RegisterResponse> {
    return this.#json('POST', '/enroll', body, { attempts: 2, baseDelayMs: 300, maxDelayMs: 1000 });
  }

  config(): Promise<ClientConfig> {
    return this.#json('GET', '/config');
  }

  ping(body: PingRequest): Promise<PingResponse> {
    return this.#json('POST', '/ping', body, { attempts: 2, baseDelayMs: 500, maxDelayMs: 2000 });
  }

  startRun(body: StartRunRequest): Promise<StartRunResponse> {
    return this.#json('POST', '/runs', body);
  }

  missing(body: MissingRequest): Promise<MissingResponse> {
    return this.#json('POST', '/contents/missing', body);
  }

  changes(runId: string, body: ChangesRequest): Promise<ChangesResponse> {
    return this.#json('POST', `/runs/${encodeURIComponent(runId)}/changes`, body);
  }

  finishRun(runId: string, body: FinishRunRequest): Promise<unknown> {
    return this.#json('POST', `/runs/${encodeURIComponent(runId)}/finish`, body);
  }

  logs(body: LogsRequest): Promise<OkResponse> {
    return this.#json('POST', '/logs', body);
  }

  files(query: FilesQuery): Promise<FilesPage> {
    return this.#json('GET', `/files${queryString(query)}`);
  }

  versions(filePath: string): Promise<VersionsResponse> {
    return this.#json('GET', `/versions${queryString({ path: filePath })}`);
  }

  /** Every current file (as of `asOf`), page by page. */
  /** Reports the running backup's progress; one attempt (the next report follows within seconds). */
  /**
   * Takes the oldest queued restore job of this client; null when none waits.
   * Not retried: a claim whose answer was lost leaves its job running, and
   * the next claim (at the next ping) ends it as interrupted.
   */
  async claimRestoreJob(): Promise<RestoreJobSpec | null> {
    const response = await this.#send('POST', '/restore-jobs/claim', { body: '{}', headers: { 'content-type': 'application/json' } });
    if (response.statusCode === 204) {
      await response.body.dump();
      return null;
    }
    try {
      return (await response.body.json()) as RestoreJobSpec;
    } catch (error) {
      throw new RetryableError(`POST /restore-jobs/claim: unreadable response (${errorMessage(error)})`, response.statusCode, { cause: error });
    }
  }

  /** Every file of a running restore job, page by page. */
  async *restoreJobFiles(jobId: string): AsyncGenerator<FilesPage['files']> {
    let cursor: string | undefined;
    do {
      const page: { files: FilesPage['files']; nextCursor: string | null } = await this.#json(
        'GET',
        `/restore-jobs/${encodeURIComponent(jobId)}/files${queryString({ cursor, limit: LIMITS.maxPageSize })}`,
      );
      yield page.files;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  async restoreJobProgress(jobId: string, body: RestoreJobProgress): Promise<RestoreJobProgressAnswer> {
    return this.#json('POST', `/restore-jobs/${encodeURIComponent(jobId)}/progress`, body, { attempts: 2, baseDelayMs: 500, maxDelayMs: 1000 });
  }

  async finishRestoreJob(jobId: string, body: RestoreJobFinish): Promise<OkResponse> {
    return this.#json('POST', `/restore-jobs/${encodeURIComponent(jobId)}/finish`, body);
  }

  async progress(body: ProgressRequest): Promise<OkResponse> {
    return this.#json('POST', '/progress', body, { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 });
  }

  /**
   * Opens the live channel (GET /events) and yields each event's name until
   * the server ends the stream or `signal` aborts. A refused token is a
   * PermanentError (401), a network failure or 5xx a RetryableError.
   */
  async *events(signal: AbortSignal): AsyncGenerator<string> {
    const response = await this.#send('GET', '/events', { headers: { accept: 'text/event-stream' }, signal });
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const name = /^event: (.+)$/m.exec(buffer.slice(0, end))?.[1];
          buffer = buffer.slice(end + 2);
          if (name !== undefined) yield name;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      throw new RetryableError(`GET /events broke off: ${networkMessage(error)}`, undefined, { cause: error });
    } finally {
      response.body.destroy();
    }
  }

  async *allFiles(query: Omit<FilesQuery, 'after'>): AsyncGenerator<FilesPage['files']> {
    let after: string | undefined;
    for (;;) {
      const page = await this.files({ ...query, ...(after === undefined ? {} : { after }) });
      if (page.files.length > 0) yield page.files;
      if (page.nextAfter === null || page.files.length === 0) return;
      after = page.nextAfter;
    }
  }

  /**
   * One multipart upload request (not retried here: the body is a one-shot
   * stream; the uploader re-asks what is missing and builds a new one).
   */
  async upload(query: UploadQuery, boundary: string, body: AsyncIterable<Uint8Array>): Promise<UploadResponse> {
    const response = await this.#send('POST', `/contents${queryString(query)}`, {
      body: Readable.from(body, { objectMode: false }),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    return (await response.body.json()) as UploadResponse;
  }

  /**
   * `POST /contents/assemble`: commits contents of several chunks the server
   * holds, from their binary records (shared/src/assemble-format.ts), given
   * as pieces sent one after another. Idempotent, so retried like a JSON
   * call; a 409 naming chunks the server does not hold is a PermanentError
   * with those hashes in `missing`.
   */
  assemble(pieces: readonly Uint8Array[]): Promise<AssembleResponse> {
    const length = pieces.reduce((sum, piece) => sum + piece.byteLength, 0);
    return withRetry(
      async () => {
        const response = await this.#send('POST', '/contents/assemble', {
          body: Readable.from(pieces, { objectMode: false }),
          headers: { 'content-type': ASSEMBLE_CONTENT_TYPE, 'content-length': String(length) },
        });
        try {
          return (await response.body.json()) as AssembleResponse;
        } catch (error) {
          throw new RetryableError(`POST /contents/assemble: unreadable response (${errorMessage(error)})`, response.statusCode, { cause: error });
        }
      },
      this.#retry,
      (error, attempt, delay) => this.#onRetry?.('POST /contents/assemble', error, attempt, delay),
    );
  }

  /**
   * The bytes of one content, as a stream (retried until the response
   * starts). The server cuts a download off when the stored bytes fail their
   * hash; a download that breaks off is therefore followed by `verify`, and
   * the stream fails with StoredContentDamagedError when that finds damage,
   * with a RetryableError (network trouble) otherwise.
   */
  async download(sha256: string): Promise<Readable> {
    const response = await withRetry(() => this.#send('GET', `/contents/${sha256}`), this.#retry, (error, attempt, delay) =>
      this.#onRetry?.(`download ${sha256}`, error, attempt, delay),
    );
    return Readable.from(this.#bodyOrDamage(sha256, response.body), { objectMode: false });
  }

  /** Reads the stored bytes whole on the server and checks their hash: throws StoredContentDamagedError when they are bad. */
  async verify(sha256: string): Promise<OkResponse> {
    return this.#json('GET', `/contents/${sha256}/verify`);
  }

  async *#bodyOrDamage(sha256: string, body: Readable): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (error) {
      try {
        await this.verify(sha256);
      } catch (verifyError) {
        if (verifyError instanceof StoredContentDamagedError) throw verifyError;
      }
      throw new RetryableError(`download ${sha256} broke off: ${networkMessage(error)}`, undefined, { cause: error });
    }
  }

  async #json<T>(method: Method, route: string, body?: unknown, policy: RetryPolicy = this.#retry): Promise<T> {
    return withRetry(
      async () => {
        const response = await this.#send(method, route, {
          ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
        try {
          return (await response.body.json()) as T;
        } catch (error) {
          throw new RetryableError(`${method} ${route}: unreadable response (${errorMessage(error)})`, response.statusCode, { cause: error });
        }
      },
      policy,
      (error, attempt, delay) => this.#onRetry?.(`${method} ${route}`, error, attempt, delay),
    );
  }

  async #send(
    method: Method,
    route: string,
    options: { body?: string | Readable; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    let response: Dispatcher.ResponseData;
    const index = this.#current;
    try {
      response = await request(`${this.#urls[index]}${API_PREFIX}${route}`, {
        method,
        headers,
        body: options.body,
        dispatcher: this.#dispatcher,
        ...(options.signal !== undefined && { signal: options.signal }),
      });
    } catch (error) {
      if (options.signal?.aborted) throw new RetryableError(`${method} ${route}: aborted`, undefined, { cause: error });
      throw this.#failOver(index, new RetryableError(`${method} ${route}: ${networkMessage(error)}`, undefined, { cause: error }));
    }
    if (response.statusCode < 400) return response;
    const detail = await readErrorBody(response);
    if (detail?.error === STORED_CONTENT_DAMAGED) throw new StoredContentDamagedError();
    const message = `${method} ${route}: ${response.statusCode} ${detail?.message ?? ''}`.trim();
    if (REPLICA_UNAVAILABLE.has(response.statusCode)) throw this.#failOver(index, new RetryableError(message, response.statusCode));
    if (response.statusCode >= 500 || response.statusCode === 429 || response.statusCode === 408) {
      throw new RetryableError(message, response.statusCode);
    }
    throw new PermanentError(message, response.statusCode, detail?.missing ?? []);
  }
}

function networkMessage(error: unknown): string {
  const code = (error as { code?: string } | null)?.code;
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  const parts = [errorMessage(error), code, cause?.code].filter((p): p is string => typeof p === 'string' && p !== '');
  return [...new Set(parts)].join(' / ');
}

async function readErrorBody(response: Dispatcher.ResponseData): Promise<Partial<ErrorBody> | undefined> {
  try {
    const text = await response.body.text();
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<ErrorBody>) : undefined;
  } catch {
    return undefined;
  }
}

function queryString(query: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}
