import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { DEFAULT_TIME_ZONE, describeSchedule, nextRunAt, type BackupSchedule, type ClientConfig, type ProgressRequest } from '@cairn/shared';
import { runBackupCycle, type LocalBackupSettings } from '../backup/backup-cycle.ts';
import { newProgress, type CycleProgress, type CycleReport, type CycleTrigger } from '../backup/backup-progress.ts';
import { DEFAULT_BACKUP_INTERVAL_SECONDS, DEFAULT_PING_INTERVAL_SECONDS, type AgentConfig, type EnvCredentials } from '../config/agent-config.ts';
import { localConfigReport } from '../config/local-config-report.ts';
import type { Logger } from '../logger.ts';
import { ApiClient } from '../net/api-client.ts';
import { errorMessage, isAuthError } from '../net/http-errors.ts';
import { backoffDelayMs, type RetryPolicy } from '../net/retry-policy.ts';
import { readAgentState, removeScanCache, stateFiles, writeAgentState, type AgentState } from '../state/agent-state.ts';
import type { ValidSetup } from '../setup/setup-form.ts';
import { runRestoreJob } from '../restore/restore-job-runner.ts';
import { FileCacheStore } from './cache-store.ts';
import { AGENT_VERSION } from './version.ts';

/** A registration: with a user's name and password, or with an enrollment key (then username and password are unused). */
export interface RegistrationInput {
  serverUrl: string;
  username: string;
  password: string;
  enrollmentKey?: string;
  clientName: string;
  monitoredPaths: string[];
}

/** The env-mode credentials as a registration of this agent. */
export function registrationFrom(credentials: EnvCredentials, clientName: string, monitoredPaths: string[]): RegistrationInput {
  return 'enrollmentKey' in credentials
    ? { serverUrl: credentials.serverUrl, username: '', password: '', enrollmentKey: credentials.enrollmentKey, clientName, monitoredPaths }
    : { ...credentials, clientName, monitoredPaths };
}

/** What the status page and the JSON status endpoint show. */
export interface AgentStatus {
  configured: boolean;
  running: boolean;
  progress: CycleProgress | null;
  lastReport: CycleReport | null;
  nextRunAt: string | null;
  lastPingAt: string | null;
  lastPingError: string | null;
  /** The live channel to the server is open (commands arrive at once, not at the next ping). */
  liveConnected: boolean;
  /** The latest problems worth a person's attention (newest first). */
  recentErrors: { at: string; message: string }[];
  serverConfig: ClientConfig | null;
}

/** The setup page refused a change (e.g. credentials of another account). */
export class SetupRefusedError extends Error {
  readonly field: 'username' | 'password' | 'currentUsername' | 'currentPassword' | null;
  constructor(
    message: string,
    field: 'username' | 'password' | 'currentUsername' | 'currentPassword' | null = null,
  ) {
    super(message);
    this.field = field;
    this.name = 'SetupRefusedError';
  }
}

export type RunRequestOutcome = 'started' | 'already-running' | 'not-configured';

const RECENT_ERRORS = 20;
/** Progress goes to the server at most this often (decision 124). */
export const PROGRESS_REPORT_MS = 1000;
/** Reconnecting the live channel: full-jitter backoff from 1 s up to a minute (attempts unused). */
const LIVE_RECONNECT: RetryPolicy = { attempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 1000, maxDelayMs: 60_000 };
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The long-running agent: holds the state, runs cycles on the schedule, on
 * "back up now" and on the server's request (never two at once), and pings.
 */
export class AgentRuntime {
  #state: AgentState | null = null;
  #api: ApiClient | null = null;
  #cacheStore: FileCacheStore | null = null;
  #serverConfig: ClientConfig | null = null;
  #current: Promise<CycleReport> | null = null;
  #progress: CycleProgress | null = null;
  #lastReport: CycleReport | null = null;
  #nextRunAt: number | null = null;
  #lastPingAt: string | null = null;
  #lastPingError: string | null = null;
  #recentErrors: { at: string; message: string }[] = [];
  #backupTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  #stopped = true;
  #lastStart = 0;
  #liveAbort: AbortController | null = null;
  #liveConnected = false;
  #progressTimer: NodeJS.Timeout | null = null;
  #progressInFlight = false;
  /** The restore jobs being worked through (one at a time), or null. */
  #restoring: Promise<void> | null = null;
  /** Bumped by start(): a ping loop of an earlier start ends instead of running twice. */
  #generation = 0;

  readonly config: AgentConfig;
  private readonly log: Logger;
  constructor(
    config: AgentConfig,
    log: Logger,
  ) {
    this.config = config;
    this.log = log;
  }

  get state(): AgentState | null {
    return this.#state;
  }

  async loadState(): Promise<AgentState | null> {
    this.#state = await readAgentState(this.config.stateDir);
    return this.#state;
  }

  status(): AgentStatus {
    return {
      configured: this.#state !== null,
      running: this.#current !== null,
      progress: this.#current !== null ? this.#progress : null,
      lastReport: this.#lastReport,
      nextRunAt: this.#nextRunAt === null ? null : new Date(this.#nextRunAt).toISOString(),
      lastPingAt: this.#lastPingAt,
      lastPingError: this.#lastPingError,
      liveConnected: this.#liveConnected,
      recentErrors: this.#recentErrors,
      serverConfig: this.#serverConfig,
    };
  }

  /** The server's dashboard page for this client. */
  dashboardUrl(): string | null {
    return this.#serverConfig?.dashboardUrl ?? this.#state?.dashboardUrl ?? null;
  }

  /**
   * Registers with the server (name + password or an enrollment key, never
   * stored) and saves the state. Throws PermanentError for wrong credentials
   * or a refused key and RetryableError when the server cannot be reached;
   * nothing is saved then.
   */
  async register(input: RegistrationInput, expectClientId?: string): Promise<AgentState> {
    const api = new ApiClient({ serverUrl: input.serverUrl });
    const byKey = input.enrollmentKey !== undefined;
    try {
      const identity = { clientName: input.clientName, hostname: this.config.hostname, agentVersion: AGENT_VERSION };
      const answer =
        input.enrollmentKey !== undefined
          ? await api.enroll({ enrollmentKey: input.enrollmentKey, ...identity })
          : await api.register({ username: input.username, password: input.password, ...identity });
      if (expectClientId !== undefined && answer.clientId !== expectClientId) {
        throw new SetupRefusedError(
          `These credentials do not belong to the account this agent is registered with on ${input.serverUrl}.`,
          this.#state && input.serverUrl !== this.#state.serverUrl ? 'currentUsername' : 'username',
        );
      }
      const previous = await readAgentState(this.config.stateDir);
      const state: AgentState = {
        serverUrl: api.serverUrl,
        clientId: answer.clientId,
        clientName: input.clientName,
        hostname: this.config.hostname,
        username: byKey ? '' : input.username,
        registeredWith: byKey ? 'enrollment-key' : 'password',
        monitoredPaths: input.monitoredPaths,
        dashboardUrl: answer.dashboardUrl,
        configuredAt: new Date().toISOString(),
        token: answer.token,
      };
      await writeAgentState(this.config.stateDir, state);
      if (previous && (previous.clientId !== state.clientId || previous.serverUrl !== state.serverUrl)) {
        await removeScanCache(this.config.stateDir);
      }
      this.log.info({ serverUrl: state.serverUrl, clientId: state.clientId, clientName: state.clientName, with: state.registeredWith }, 'registered with the server');
      return state;
    } finally {
      await api.close();
    }
  }

  /**
   * The setup page's submit. A configured agent first proves the person owns
   * it: the credentials for the current server must register this agent's
   * current client name and get back this agent's own client id (another
   * account would get another client). Only then is the new setup applied.
   */
  async configure(setup: ValidSetup): Promise<AgentState> {
    const current = this.#state;
    let state: AgentState | null = null;
    if (current !== null) {
      const verified = await this.register(
        {
          serverUrl: current.serverUrl,
          username: setup.currentUsername,
          password: setup.currentPassword,
          clientName: current.clientName,
          monitoredPaths: current.monitoredPaths,
        },
        current.clientId,
      );
      // The old token was replaced by that registration; keep the new one in use until the switch.
      this.#state = verified;
      if (verified.serverUrl === setup.serverUrl && current.clientName === setup.clientName) {
        state = { ...verified, username: setup.username, monitoredPaths: setup.monitoredPaths };
        await writeAgentState(this.config.stateDir, state);
      }
    }
    state ??= await this.register(setup);
    await this.start(state);
    return state;
  }

  /** Starts (or restarts with new state) the schedule; the first cycle begins at once. */
  async start(state: AgentState): Promise<void> {
    await this.stop();
    this.#state = state;
    this.#api = this.#apiFor(state);
    this.#cacheStore = new FileCacheStore(stateFiles(this.config.stateDir).cache, state.clientId);
    this.#serverConfig = null;
    this.#stopped = false;
    this.#generation += 1;
    this.log.info({ serverUrl: state.serverUrl, clientName: state.clientName }, 'agent started');
    void this.#pingLoop(this.#generation);
    void this.#liveLoop(this.#generation);
    void this.#firstRun(this.#generation);
  }

  /**
   * The first cycle after start: at once for an interval schedule (as
   * always), but a cron schedule waits for its next time and a window for
   * its opening, so restarting an agent does not run a nightly backup at
   * noon. Needs the schedule first; when the server cannot say, the cycle
   * starts at once and fetches the configuration itself.
   */
  async #firstRun(generation: number): Promise<void> {
    const api = this.#api;
    if (api === null) return;
    if (this.config.backupIntervalSeconds === undefined) {
      try {
        this.#serverConfig = await api.config();
      } catch (error) {
        this.log.warn({ err: errorMessage(error) }, 'could not read the schedule from the server; backing up now');
      }
    }
    if (this.#stopped || generation !== this.#generation || this.#current !== null) return;
    const at = nextRunAt(this.#schedule(), null, new Date());
    if (at !== null && at.getTime() <= Date.now()) this.requestRun('schedule');
    else this.#scheduleNext();
  }

  /** Stops the timers and waits for a running cycle to end. */
  async stop(): Promise<void> {
    this.#halt();
    if (this.#current) await this.#current.catch(() => undefined);
    await this.#api?.close().catch(() => undefined);
    this.#api = null;
  }

  /** Stops the timers from inside a cycle (stop() would wait for that very cycle). */
  #halt(): void {
    this.#stopped = true;
    this.#liveAbort?.abort();
    if (this.#backupTimer) clearTimeout(this.#backupTimer);
    if (this.#pingTimer) clearTimeout(this.#pingTimer);
    this.#backupTimer = null;
    this.#pingTimer = null;
    this.#nextRunAt = null;
  }

  /** Starts a cycle unless one is running. */
  requestRun(trigger: CycleTrigger): RunRequestOutcome {
    if (this.#state === null || this.#api === null || this.#stopped) return 'not-configured';
    if (this.#current !== null) return 'already-running';
    if (this.#backupTimer) clearTimeout(this.#backupTimer);
    this.#backupTimer = null;
    this.#nextRunAt = null;
    this.#progressTimer = setInterval(() => void this.#reportProgress(), PROGRESS_REPORT_MS);
    this.#current = this.#runCycle(trigger).finally(() => {
      if (this.#progressTimer) clearInterval(this.#progressTimer);
      this.#progressTimer = null;
      this.#current = null;
      this.#scheduleNext();
    });
    return 'started';
  }

  async #runCycle(trigger: CycleTrigger): Promise<CycleReport> {
    const api = this.#api as ApiClient;
    this.#progress = newProgress();
    const started = Date.now();
    const report = await runBackupCycle({
      api,
      log: this.log,
      cache: this.#cacheStore as FileCacheStore,
      settings: this.#settings(),
      trigger,
      progress: this.#progress,
      onConfig: (config) => {
        this.#serverConfig = config;
      },
    });
    this.#lastReport = report;
    this.#lastStart = started;
    const at = report.finishedAt;
    const fresh = report.problems.map((message) => ({ at, message }));
    if (report.error && !report.problems.some((p) => p.endsWith(report.error ?? ''))) fresh.unshift({ at, message: report.error });
    this.#recentErrors = [...fresh.reverse(), ...this.#recentErrors].slice(0, RECENT_ERRORS);
    if (report.authFailed) await this.#onAuthFailure();
    return report;
  }

  /**
   * Env mode with USERNAME/PASSWORD holds the credentials, so a revoked token
   * is replaced by registering again. An agent that registered with an
   * enrollment key does not: its revoked client stays revoked, and the agent
   * stops backing up and pinging (a key could not take the client back
   * anyway, decision 98) until a person gives it a new token or key.
   */
  async #onAuthFailure(): Promise<void> {
    const credentials = this.config.credentials;
    if (this.#state?.registeredWith === 'enrollment-key' || (credentials !== undefined && 'enrollmentKey' in credentials)) {
      this.#halt();
      this.log.error(
        { clientId: this.#state?.clientId, serverUrl: this.#state?.serverUrl },
        'the server refused this agent\'s token (revoked?); it registered with an enrollment key, so it does not register again by itself: backups stopped. ' +
          'To enrol it again, delete the client or give it a new name, remove the state directory and start the agent with a new ENROLLMENT_KEY',
      );
      this.#recentErrors = [{ at: new Date().toISOString(), message: 'The server refused this agent\'s token; backups stopped until it is enrolled again.' }, ...this.#recentErrors].slice(0, RECENT_ERRORS);
      return;
    }
    if (credentials === undefined || this.#state === null) {
      this.log.error('the server refused this agent\'s token; run the setup again');
      return;
    }
    try {
      const state = await this.register(registrationFrom(credentials, this.config.clientName, this.config.monitoredPaths));
      this.#state = state;
      await this.#api?.close();
      this.#api = this.#apiFor(state);
      this.#cacheStore = new FileCacheStore(stateFiles(this.config.stateDir).cache, state.clientId);
      this.#lastStart = 0; // the next cycle starts at once with the new token
      this.log.info('registered again after the server refused the token');
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'the server refused this agent\'s token and registering again failed');
    }
  }

  #apiFor(state: AgentState): ApiClient {
    return new ApiClient({
      serverUrl: state.serverUrl,
      token: state.token,
      onRetry: (what, error, attempt, delayMs) => this.log.warn({ what, err: error.message, attempt, delayMs }, 'request failed; retrying'),
      onFailover: (from, to, error) => this.log.warn({ from, to, err: error.message }, `server ${from} did not answer; going on with ${to}`),
    });
  }

  /** The local monitored paths: the setup page's in UI mode, MONITORED_PATHS in env mode. */
  #localMonitoredPaths(): string[] {
    return this.config.uiEnabled ? (this.#state?.monitoredPaths ?? []) : this.config.monitoredPaths;
  }

  #settings(): LocalBackupSettings {
    return {
      monitoredPaths: this.#localMonitoredPaths(),
      excludes: this.config.excludes,
      preCommands: this.config.preCommands,
      preCommandTimeoutSeconds: this.config.preCommandTimeoutSeconds,
      allowRemoteCommands: this.config.allowRemoteCommands,
      remoteCommandAllowlist: this.config.remoteCommandAllowlist,
      hashConcurrency: this.config.hashConcurrency,
      alwaysExclude: [path.resolve(this.config.stateDir)],
      spoolDir: path.join(path.resolve(this.config.stateDir), 'spool'),
    };
  }

  backupIntervalSeconds(): number {
    return this.config.backupIntervalSeconds ?? this.#serverConfig?.backupIntervalSeconds ?? DEFAULT_BACKUP_INTERVAL_SECONDS;
  }

  /** The schedule in force, in words, for the status page. */
  scheduleDescription(): string {
    return describeSchedule(this.#schedule());
  }

  /** The schedule in force: a local BACKUP_INTERVAL wins (a plain interval); else the server's (older servers: its interval). */
  #schedule(): BackupSchedule {
    const interval = { intervalSeconds: this.backupIntervalSeconds(), cron: null, timeZone: DEFAULT_TIME_ZONE, window: null };
    if (this.config.backupIntervalSeconds !== undefined) return interval;
    return this.#serverConfig?.schedule ?? interval;
  }

  /** A ping brought the server's current schedule: an edit applies now, not after the run it would have waited for. */
  #onServerSchedule(schedule: BackupSchedule | undefined): void {
    const config = this.#serverConfig;
    if (schedule === undefined || config === null || JSON.stringify(schedule) === JSON.stringify(config.schedule)) return;
    this.#serverConfig = { ...config, schedule, backupIntervalSeconds: schedule.intervalSeconds };
    this.log.info({ schedule }, 'the server changed the backup schedule');
    if (this.#current === null && !this.#stopped) {
      if (this.#backupTimer) clearTimeout(this.#backupTimer);
      this.#backupTimer = null;
      this.#scheduleNext();
    }
  }

  pingIntervalSeconds(): number {
    return this.config.pingIntervalSeconds ?? this.#serverConfig?.pingIntervalSeconds ?? DEFAULT_PING_INTERVAL_SECONDS;
  }

  /**
   * Sets the timer for the next cycle (shared/src/schedule.ts): one interval
   * after the previous start, or the next cron time, at once when overdue,
   * and only inside the window. A cron with no time in its window never runs.
   */
  #scheduleNext(): void {
    if (this.#stopped) return;
    const next = nextRunAt(this.#schedule(), this.#lastStart === 0 ? null : new Date(this.#lastStart), new Date());
    if (next === null) {
      this.#nextRunAt = null;
      this.log.warn({ schedule: this.#schedule() }, 'the schedule has no time inside its window: no backup scheduled');
      return;
    }
    const at = next.getTime();
    this.#nextRunAt = at;
    // Node fires timers longer than 2^31-1 ms at once: wait in steps and look again.
    const delay = at - Date.now();
    this.#backupTimer = setTimeout(() => (delay > MAX_TIMER_MS ? this.#scheduleNext() : this.requestRun('schedule')), Math.min(delay, MAX_TIMER_MS));
    this.log.info({ nextRunAt: new Date(at).toISOString() }, 'next backup scheduled');
  }

  /** One heartbeat: records it, applies the schedule it brings and starts a requested run. */
  async #pingOnce(api: ApiClient): Promise<void> {
    try {
      const answer = await api.ping({
        agentVersion: AGENT_VERSION,
        hostname: os.hostname(),
        state: this.#current ? 'running' : 'idle',
        localConfig: localConfigReport(this.config, this.#localMonitoredPaths()),
      });
      this.#lastPingAt = new Date().toISOString();
      this.#lastPingError = null;
      this.#onServerSchedule(answer.schedule);
      if (answer.runRequested && this.requestRun('server') === 'started') this.log.info('the server asked for a backup; starting one');
      if (answer.restoreJobsPending) this.#startRestoreJobs(api);
    } catch (error) {
      this.#lastPingError = errorMessage(error);
      this.log.warn({ err: this.#lastPingError }, 'ping failed');
    }
  }

  async #pingLoop(generation: number): Promise<void> {
    if (this.#stopped || this.#api === null || generation !== this.#generation) return;
    await this.#pingOnce(this.#api);
    if (this.#stopped || generation !== this.#generation) return;
    this.#pingTimer = setTimeout(() => void this.#pingLoop(generation), this.pingIntervalSeconds() * 1000);
  }

  /**
   * The live channel (decision 122): holds GET /events open and, on each
   * event, pings at once (hello: catch up on what happened while away; run;
   * config: also fetch the configuration). The heartbeat stays the fallback.
   * Reconnects with backoff; a refused token is handled like a refused ping.
   */
  async #liveLoop(generation: number): Promise<void> {
    let failures = 0;
    while (!this.#stopped && generation === this.#generation && this.#api !== null) {
      const api = this.#api;
      const abort = new AbortController();
      this.#liveAbort = abort;
      try {
        for await (const event of api.events(abort.signal)) {
          if (!this.#liveConnected) this.log.info('live channel to the server open');
          this.#liveConnected = true;
          failures = 0;
          if (event === 'config') await this.#refreshConfig(api);
          if (event === 'hello' || event === 'run' || event === 'config' || event === 'restore') await this.#pingOnce(api);
          if (event === 'revoked') this.log.warn('the server closed the live channel: this agent\'s token was revoked or replaced');
        }
      } catch (error) {
        if (isAuthError(error)) {
          if (this.#current === null) await this.#onAuthFailure();
        } else if (!abort.signal.aborted) {
          this.log.debug({ err: errorMessage(error) }, 'live channel failed; reconnecting');
        }
      }
      if (this.#liveConnected) this.log.info('live channel closed; reconnecting');
      this.#liveConnected = false;
      if (this.#stopped || generation !== this.#generation) return;
      failures += 1;
      await sleep(backoffDelayMs(failures, LIVE_RECONNECT, Math.random()));
    }
  }

  /**
   * Works through the restore jobs queued for this agent (decision 143), one
   * at a time, beside backups (a restore writes into its own target). A
   * second call while they run does nothing: the loop claims until the
   * server has none left.
   */
  #startRestoreJobs(api: ApiClient): void {
    if (this.#restoring !== null || this.#stopped) return;
    const settings = { allowRemoteCommands: this.config.allowRemoteCommands, remoteCommandAllowlist: this.config.remoteCommandAllowlist };
    this.#restoring = (async () => {
      while (!this.#stopped && api === this.#api) {
        let job;
        try {
          job = await api.claimRestoreJob();
        } catch (error) {
          this.log.warn({ err: errorMessage(error) }, 'could not claim a restore job; trying again at the next ping');
          return;
        }
        if (job === null) return;
        const outcome = await runRestoreJob(api, job, settings, this.log);
        if (outcome.status !== 'succeeded' && outcome.status !== 'cancelled') {
          const message = `Restore job ${job.jobId} ended ${outcome.status}: ${outcome.error ?? ''}`.trim();
          this.#recentErrors = [{ at: new Date().toISOString(), message }, ...this.#recentErrors].slice(0, RECENT_ERRORS);
        }
      }
    })().finally(() => {
      this.#restoring = null;
    });
  }

  /** A config edit on the dashboard: take the new configuration now (the next cycle would fetch it too). */
  async #refreshConfig(api: ApiClient): Promise<void> {
    try {
      const fresh = await api.config();
      const old = this.#serverConfig;
      // Keep the old schedule here so #onServerSchedule sees the change and resets the timer.
      this.#serverConfig = old === null ? fresh : { ...fresh, schedule: old.schedule, backupIntervalSeconds: old.backupIntervalSeconds };
      if (old === null) {
        if (this.#current === null && !this.#stopped && this.#backupTimer) {
          clearTimeout(this.#backupTimer);
          this.#backupTimer = null;
          this.#scheduleNext();
        }
      } else {
        this.#onServerSchedule(fresh.schedule);
      }
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'could not fetch the changed configuration');
    }
  }

  /** Sends the running cycle's progress; skipped while the previous report is still under way, so at most one a second. */
  async #reportProgress(): Promise<void> {
    const progress = this.#progress;
    const api = this.#api;
    if (progress === null || api === null || this.#current === null || this.#progressInFlight) return;
    this.#progressInFlight = true;
    try {
      await api.progress(progressReport(progress, Date.now()));
    } catch (error) {
      this.log.debug({ err: errorMessage(error) }, 'progress report failed');
    } finally {
      this.#progressInFlight = false;
    }
  }
}

/** The progress report the server stores: the counters, with the hashing rate and an ETA derived from them. */
export function progressReport(progress: CycleProgress, now: number): ProgressRequest {
  const elapsedSeconds = Math.max((now - Date.parse(progress.startedAt)) / 1000, 0.001);
  const bytesPerSecond = Math.round(progress.bytesHashed / elapsedSeconds);
  const remaining = progress.bytesToHash - progress.bytesHashed;
  const etaSeconds = bytesPerSecond > 0 && progress.bytesToHash > 0 ? Math.max(0, Math.round(remaining / bytesPerSecond)) : null;
  return {
    runId: progress.runId,
    phase: progress.phase,
    startedAt: progress.startedAt,
    filesScanned: progress.filesScanned,
    filesToCheck: progress.filesToCheck,
    filesChecked: progress.filesChecked,
    filesCommitted: progress.filesCommitted,
    bytesToHash: progress.bytesToHash,
    bytesHashed: progress.bytesHashed,
    bytesUploaded: progress.bytesUploaded,
    bytesPerSecond,
    etaSeconds,
  };
}
