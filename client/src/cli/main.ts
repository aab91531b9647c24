/**
 * `cairn`, the command line for people (issue 14; the agent is `cairn-agent`).
 * It talks to the server's admin REST API with a personal access token that
 * `cairn login` makes and saves (see cli-config.ts). Exit codes: 0 done,
 * 1 the server or the network refused, 2 a usage error.
 */
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { request, type Dispatcher } from 'undici';
import { formatBytes, parseDuration } from '@cairn/shared';
import { cliConfigPath, readCliConfig, removeCliConfig, writeCliConfig, type CliConfig } from './cli-config.ts';

const USAGE = `Usage: cairn <command> [options]

  login [--server URL] [--username NAME] [--token TOKEN] [--read-only] [--days N]
        sign in (asks for what is missing; the password is read from the terminal,
        or from the first line of stdin) and save a new personal access token
  logout                                    revoke the saved token on the server and delete it here
  account                                   who you are signed in as, and your clients
  clients                                   your clients and their last run
  files <client> [folder] [--as-of TIME]     the files under a folder (default /)
  file url <client> <path> [--as-of TIME] [--expires 1h]
                                            a temporary download URL for that file
  folder url <client> [folder] [--as-of TIME] [--expires 1h]
                                            a temporary download URL for a .tar.gz
  file get <client> <path> [--as-of TIME] [-o FILE]
                                            download the file (default: its name here)
  file versions <client> <path>             every retained version of that file
  users                                     the users (administrators; others: themselves)
  runs <client> [--limit N]                 the client's backup runs, newest first
  rules <client>                            the retention in force for the client: versions, days,
                                            folder rules and restore points (its own or its owner's)
  restore <client> <path>... --into DIR [--to CLIENT] [--as-of TIME] [--overwrite]
          [--then COMMAND] [--wait]         a restore job: the target's agent restores the paths
                                            into DIR and runs COMMAND after; --wait follows it
  restores <client>                         restore jobs from or onto the client
  restore cancel <job-id>                   cancel a queued or running restore job
  alerts [--state STATE] [--client NAME]    alerts of your clients (default: open and acknowledged)
  alerts ack <id>                           acknowledge an open alert
  verify                                    verify runs and what is damaged (administrators)
  verify start                              start a verify run that reads every pack

  <client> is a client's name or id. TIME is an ISO time (UTC when it has no zone).
  --expires: 90s, 30m, 1h (default), 1d ... at most 7d. --json prints the answer as JSON.
  Configuration: $CAIRN_CLI_CONFIG, else ~/.config/cairn/cli.json (mode 0600).`;

class UsageError extends Error {}
class ApiError extends Error {
  readonly status: number;
  constructor(
    status: number,
    message: string,
  ) {
    super(message);
    this.status = status;
  }
}

type Json = Record<string, unknown>;

interface Session {
  server: string;
  token: string;
}

async function api<T = Json>(session: Session, method: string, route: string, body?: unknown): Promise<T> {
  let response;
  try {
    response = await request(`${session.server}/api/v1${route}`, {
      method: method as Dispatcher.HttpMethod,
      headers: { ...(session.token ? { authorization: `Bearer ${session.token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach ${session.server}: ${(error as Error).message}`);
  }
  const text = await response.body.text();
  let parsed: Json;
  try {
    parsed = text === '' ? {} : (JSON.parse(text) as Json);
  } catch {
    throw new ApiError(response.statusCode, `${session.server} answered ${response.statusCode} with something that is not JSON: is it a Cairn server?`);
  }
  if (response.statusCode >= 400) {
    const message = typeof parsed.message === 'string' ? parsed.message : `HTTP ${response.statusCode}`;
    if (response.statusCode === 401 && session.token) throw new ApiError(401, `${message}: sign in again with cairn login`);
    throw new ApiError(response.statusCode, message);
  }
  return parsed as T;
}

/** The saved session, with CAIRN_SERVER / CAIRN_TOKEN overriding it. */
async function session(env: NodeJS.ProcessEnv): Promise<Session> {
  const saved = await readCliConfig(cliConfigPath(env));
  const server = env.CAIRN_SERVER || saved?.server;
  const token = env.CAIRN_TOKEN || saved?.token;
  if (!server || !token) throw new UsageError('not signed in: run cairn login first');
  return { server: server.replace(/\/+$/, ''), token };
}

function asOfParam(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const withZone = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(text.trim()) ? `${text.trim()}${text.includes('T') ? '' : 'T00:00'}Z` : text.trim();
  const time = new Date(withZone);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--as-of: not a time: ${JSON.stringify(text)}; use an ISO time such as 2026-11-20T18:00Z`);
  return time.toISOString();
}

function expiresParam(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = parseDuration(text);
  if (seconds === null) throw new UsageError(`--expires: not a duration: ${JSON.stringify(text)}; use 90s, 30m, 1h, 1d ... at most 7d`);
  return seconds;
}

/** A client by id or by name; the error lists the names when none matches. */
async function findClient(s: Session, nameOrId: string | undefined): Promise<Json> {
  if (!nameOrId) throw new UsageError('name a client (cairn clients lists them)');
  const { clients } = await api<{ clients: Json[] }>(s, 'GET', '/admin/clients');
  const found = clients.filter((c) => c.id === nameOrId || c.name === nameOrId);
  if (found.length === 1) return found[0]!;
  if (found.length > 1) throw new UsageError(`several clients are named ${JSON.stringify(nameOrId)}: use the id (${found.map((c) => c.id).join(', ')})`);
  throw new ApiError(404, `no client ${JSON.stringify(nameOrId)}; yours: ${clients.map((c) => c.name).join(', ') || 'none'}`);
}

/** One line from the terminal without echo, or the first line of piped stdin. */
async function readSecret(prompt: string): Promise<string> {
  const input = process.stdin;
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input, output, terminal: input.isTTY === true });
  try {
    if (input.isTTY) process.stderr.write(prompt);
    muted = true;
    const line = await new Promise<string>((resolve, reject) => {
      rl.once('line', resolve);
      rl.once('close', () => reject(new UsageError('no password given (stdin ended)')));
    });
    if (input.isTTY) process.stderr.write('\n');
    return line;
  } finally {
    rl.close();
  }
}

async function ask(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError(`${prompt.replace(/: $/, '')}: give it as an option (stdin is not a terminal)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await new Promise<string>((resolve) => rl.question(prompt, resolve));
  } finally {
    rl.close();
  }
}

const print = (json: boolean, value: unknown, text: () => string) => console.log(json ? JSON.stringify(value, null, 2) : text());
const time = (iso: unknown) => (typeof iso === 'string' ? iso.slice(0, 16).replace('T', ' ') + 'Z' : 'never');

async function login(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): Promise<void> {
  const server = ((values.server as string | undefined) ?? (await ask('Server URL: '))).trim().replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(server)) throw new UsageError(`--server: an http:// or https:// URL, not ${JSON.stringify(server)}`);
  let config: CliConfig;
  if (typeof values.token === 'string') {
    const me = await api<{ user: { username: string } }>({ server, token: values.token }, 'GET', '/admin/me');
    config = { server, token: values.token, username: me.user.username };
  } else {
    const username = ((values.username as string | undefined) ?? (await ask('Username: '))).trim();
    const password = await readSecret('Password: ');
    const days = values.days === undefined ? undefined : Number(values.days);
    if (days !== undefined && !Number.isInteger(days)) throw new UsageError('--days: a whole number of days');
    const issued = await api<{ token: string; name: string; expiresAt: string; user: { username: string } }>({ server, token: '' }, 'POST', '/auth/token', {
      username,
      password,
      tokenName: `cairn CLI (${(await import('node:os')).hostname().slice(0, 60)})`,
      readOnly: values['read-only'] === true,
      ...(days !== undefined ? { expiresInDays: days } : {}),
    });
    config = { server, token: issued.token, username: issued.user.username };
    console.error(`Token "${issued.name}" made; it expires ${time(issued.expiresAt)} (revoke it on your user page).`);
  }
  const file = cliConfigPath(env);
  await writeCliConfig(file, config);
  console.log(`Signed in to ${server} as ${config.username}; saved to ${file}`);
}

/**
 * Revokes the saved token on the server and deletes the saved file. A token
 * the server already refuses (revoked, expired) is only deleted here, and
 * that is still a success; when the server cannot be asked, the file stays so
 * that the token can still be revoked.
 */
async function logout(env: NodeJS.ProcessEnv): Promise<void> {
  const file = cliConfigPath(env);
  const saved = await readCliConfig(file);
  if (!saved) {
    console.log(`Not signed in (no ${file}); nothing to do.`);
    return;
  }
  const server = saved.server.replace(/\/+$/, '');
  let outcome: string;
  try {
    await api({ server, token: saved.token }, 'DELETE', '/admin/me/token');
    outcome = 'token revoked on the server';
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status !== 401) throw new ApiError(error.status, `${error.message}; the token is still valid and still saved in ${file}: try again, or revoke it on your user page`);
    outcome = 'the server already refused the token (revoked or expired), so there was nothing to revoke';
  }
  await removeCliConfig(file);
  console.log(`Signed out of ${server}: ${outcome}; removed ${file}`);
}

function restoreLine(j: Json): string {
  return [j.id, j.status, `${j.sourceClientName as string} → ${j.targetClientName as string}`, (j.paths as string[]).join(','), `into ${j.targetDir as string}`, `as of ${time(j.asOf)}`, `made ${time(j.createdAt)}`].join('\t');
}

/** A finished job as a person reads it: what was restored, what failed, the command's result. */
function restoreOutcome(j: Json): string {
  const result = j.result as Json | null;
  const lines = [`Restore job ${j.id as string} ${j.status as string}${j.error ? `: ${j.error as string}` : ''}`];
  if (result) {
    lines.push(`restored ${String(result.filesRestored)} files, ${formatBytes(result.bytesRestored as number)}; ${String(result.filesFailed)} failed`);
    for (const f of result.failures as Json[]) lines.push(`FAILED ${f.path as string}: ${f.error as string}`);
    const command = result.command as Json | null;
    if (command) lines.push(`command ${command.command as string}: ${command.refused ? 'refused' : command.timedOut ? 'timed out' : `exit code ${String(command.exitCode)}`}${command.output ? `\n${command.output as string}` : ''}`);
  }
  return lines.join('\n');
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: 'string' },
        username: { type: 'string' },
        token: { type: 'string' },
        'read-only': { type: 'boolean' },
        days: { type: 'string' },
        'as-of': { type: 'string' },
        expires: { type: 'string' },
        output: { type: 'string', short: 'o' },
        state: { type: 'string' },
        client: { type: 'string' },
        limit: { type: 'string' },
        into: { type: 'string' },
        to: { type: 'string' },
        overwrite: { type: 'boolean' },
        then: { type: 'string' },
        wait: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  const json = values.json === true;
  try {
    if (values.help || command === undefined || command === 'help') {
      console.log(USAGE);
      return command === undefined && !values.help ? 2 : 0;
    }
    if (command === 'login') {
      await login(values, env);
      return 0;
    }
    if (command === 'logout') {
      await logout(env);
      return 0;
    }
    const s = await session(env);
    if (command === 'account') {
      const me = await api<{ user: Json; token: Json }>(s, 'GET', '/admin/me');
      const { clients } = await api<{ clients: Json[] }>(s, 'GET', '/admin/clients');
      print(json, { ...me, server: s.server, clients }, () =>
        [
          `${me.user.username}${me.user.isAdmin ? ' (administrator)' : ''} on ${s.server}`,
          `token: ${me.token.name}${me.token.readOnly ? ' (read-only)' : ''}`,
          `clients: ${clients.length === 0 ? 'none' : clients.map((c) => c.name).join(', ')}`,
        ].join('\n'),
      );
      return 0;
    }
    if (command === 'clients') {
      const { clients } = await api<{ clients: Json[] }>(s, 'GET', '/admin/clients');
      const rows = await Promise.all(
        clients.map(async (c): Promise<Json & { lastRun: Json | null }> => ({ ...c, lastRun: (await api<{ runs: Json[] }>(s, 'GET', `/admin/clients/${c.id as string}/runs?limit=1`)).runs[0] ?? null })),
      );
      print(json, { clients: rows }, () =>
        rows.length === 0
          ? 'No clients.'
          : rows
              .map((c) => {
                const run = c.lastRun;
                const last = run ? `last run ${run.status as string} ${time(run.finishedAt ?? run.startedAt)}` : 'no runs yet';
                return `${c.name as string}\t${c.id as string}\t${last}\tlast backup ${time(c.lastBackupAt)}`;
              })
              .join('\n'),
      );
      return 0;
    }
    if (command === 'files') {
      const client = await findClient(s, args[0]);
      const prefix = args[1] ?? '/';
      const asOf = asOfParam(values['as-of']);
      const files: Json[] = [];
      let after: string | null = null;
      do {
        const query = new URLSearchParams({ prefix, limit: '1000', ...(asOf ? { asOf } : {}), ...(after ? { after } : {}) });
        const page: { files: Json[]; nextAfter: string | null } = await api(s, 'GET', `/admin/clients/${client.id as string}/files?${query}`);
        files.push(...page.files);
        after = page.nextAfter;
      } while (after !== null);
      print(json, { files }, () =>
        files.length === 0
          ? 'Nothing there at that time.'
          : files.map((f) => `${(f.kind as string).padEnd(9)}${(f.kind === 'file' ? formatBytes(f.size as number) : '').padStart(10)}  ${time(f.validFrom)}  ${f.path as string}`).join('\n'),
      );
      return 0;
    }
    if ((command === 'file' || command === 'folder') && (args[0] === 'url' || (command === 'file' && args[0] === 'get'))) {
      const client = await findClient(s, args[1]);
      const target = command === 'file' ? { path: args[2] } : { folder: args[2] ?? '/' };
      if (command === 'file' && !args[2]) throw new UsageError('name the file: cairn file url <client> <path>');
      const asOf = asOfParam(values['as-of']);
      const get = args[0] === 'get';
      // A download through `file get` needs its link only for a moment.
      const expiresInSeconds = get ? 300 : expiresParam(values.expires);
      const link = await api<{ url: string; expiresAt: string; path: string }>(s, 'POST', `/admin/clients/${client.id as string}/download-links`, {
        ...target,
        ...(asOf ? { asOf } : {}),
        ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
      });
      if (!get) {
        print(json, link, () => link.url);
        if (!json) console.error(`valid until ${time(link.expiresAt)}, without signing in; each use is audited`);
        return 0;
      }
      const out = values.output ?? link.path.split('/').pop()!;
      const response = await request(link.url);
      if (response.statusCode !== 200) {
        const body = await response.body.text();
        throw new ApiError(response.statusCode, `download failed (${response.statusCode}): ${body}`);
      }
      await pipeline(response.body, out === '-' ? process.stdout : createWriteStream(out, { flags: 'wx' }));
      if (out !== '-') console.error(`saved ${link.path} to ${out}`);
      return 0;
    }
    if (command === 'file' && args[0] === 'versions') {
      const client = await findClient(s, args[1]);
      if (!args[2]) throw new UsageError('name the file: cairn file versions <client> <path>');
      const { versions } = await api<{ versions: Json[] }>(s, 'GET', `/admin/clients/${client.id as string}/versions?${new URLSearchParams({ path: args[2] })}`);
      print(json, { versions }, () =>
        versions.length === 0
          ? 'No version of that path is kept.'
          : versions
              .map((v) => `${time(v.validFrom)} → ${v.validTo ? time(v.validTo) : 'current'}	${v.kind === 'file' ? formatBytes(v.size as number) : (v.kind as string)}	${typeof v.sha256 === 'string' ? v.sha256.slice(0, 12) : '-'}`)
              .join('\n'),
      );
      return 0;
    }
    if (command === 'users') {
      const me = await api<{ user: Json }>(s, 'GET', '/admin/me');
      const users = me.user.isAdmin ? (await api<{ users: Json[] }>(s, 'GET', '/admin/users')).users : [await api<Json>(s, 'GET', `/admin/users/${me.user.id as string}`)];
      print(json, { users }, () =>
        users
          .map((u) => `${u.username as string}\t${u.id as string}\t${u.isAdmin ? 'admin' : 'user'}${u.disabled ? ' (disabled)' : ''}\tkeeps ${String(u.retentionVersions)} versions${u.retentionDays === null ? '' : `, ${String(u.retentionDays)} days`}`)
          .join('\n'),
      );
      return 0;
    }
    if (command === 'runs') {
      const client = await findClient(s, args[0]);
      const limit = values.limit === undefined ? 20 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError('--limit: a whole number from 1 to 500');
      const { runs } = await api<{ runs: Json[] }>(s, 'GET', `/admin/clients/${client.id as string}/runs?limit=${limit}`);
      print(json, { runs }, () =>
        runs.length === 0
          ? 'No runs yet.'
          : runs
              .map((r) => `${time(r.startedAt)}\t${(r.status as string).padEnd(9)}\t${r.trigger as string}\tscanned ${String(r.filesScanned)}, changed ${String(r.filesChanged)}, failed ${String(r.filesFailed)}\t${formatBytes(r.bytesUploaded as number)} uploaded${r.error ? `\t${r.error as string}` : ''}`)
              .join('\n'),
      );
      return 0;
    }
    if (command === 'rules') {
      const client = await findClient(s, args[0]);
      const own = client.retentionRules as Json | null;
      const owner = own === null || client.retention === null || (client.retention as Json).versions === null ? await api<Json>(s, 'GET', `/admin/users/${client.ownerId as string}`).catch(() => null) : null;
      const base = (client.retention as Json | null)?.versions != null ? (client.retention as Json) : owner ? { versions: owner.retentionVersions, days: owner.retentionDays } : null;
      const rules = (own ?? owner?.retentionRules ?? null) as { folders: { folder: string; rules: { count: number; minAgeDays: number }[] }[]; restorePoints: Record<string, number> } | null;
      const answer = { client: client.name, retention: base, retentionFrom: (client.retention as Json | null)?.versions != null ? 'client' : 'owner', retentionRules: rules, rulesFrom: own !== null ? 'client' : 'owner' };
      print(json, answer, () => {
        const lines = [`${client.name as string}:`];
        lines.push(base ? `  each file: the last ${String(base.versions)} versions${base.days == null ? '' : `, for at most ${String(base.days)} days`} (${answer.retentionFrom}'s policy)` : '  each file: the owner\'s policy (not readable with this token)');
        if (rules) {
          for (const f of rules.folders) lines.push(`  ${f.folder}: ${f.rules.map((r) => `${r.count}.${r.minAgeDays}`).join(' ')} (count.min_age_days)`);
          const points = Object.entries(rules.restorePoints).filter(([, n]) => n > 0).map(([kind, n]) => `${n} ${kind}`);
          lines.push(`  restore points: ${points.length > 0 ? points.join(', ') : 'none kept beyond the rules above'} (${answer.rulesFrom}'s rules)`);
        }
        return lines.join('\n');
      });
      return 0;
    }
    if (command === 'restores') {
      const client = await findClient(s, args[0]);
      const { jobs } = await api<{ jobs: Json[] }>(s, 'GET', `/admin/clients/${client.id as string}/restore-jobs`);
      print(json, { jobs }, () => (jobs.length === 0 ? 'No restore jobs.' : jobs.map(restoreLine).join('\n')));
      return 0;
    }
    if (command === 'restore' && args[0] === 'cancel') {
      if (!args[1]) throw new UsageError('name the job: cairn restore cancel <job-id> (cairn restores <client> lists them)');
      const answer = await api<{ status: string }>(s, 'POST', `/admin/restore-jobs/${encodeURIComponent(args[1])}/cancel`);
      print(json, answer, () => (answer.status === 'cancelled' ? 'Cancelled before it started.' : 'Cancel requested: the agent stops before its next file.'));
      return 0;
    }
    if (command === 'restore') {
      const client = await findClient(s, args[0]);
      const paths = args.slice(1);
      if (paths.length === 0) throw new UsageError('name what to restore: cairn restore <client> <path>... --into DIR (/ for everything)');
      if (!values.into) throw new UsageError('--into: the directory on the target machine to restore into');
      const target = values.to ? await findClient(s, values.to) : client;
      const asOf = asOfParam(values['as-of']);
      let job = await api<Json>(s, 'POST', `/admin/clients/${client.id as string}/restore-jobs`, {
        targetClientId: target.id,
        paths,
        targetDir: values.into,
        overwrite: values.overwrite === true,
        ...(values.then ? { postCommand: values.then } : {}),
        ...(asOf ? { asOf } : {}),
      });
      if (!values.wait) {
        print(json, job, () => `Restore job ${job.id as string} queued for ${job.targetClientName as string}; cairn restores ${client.name as string} follows it.`);
        return 0;
      }
      if (!json) console.error(`restore job ${job.id as string} queued for ${job.targetClientName as string}; waiting for it`);
      let shown = '';
      while (job.status === 'queued' || job.status === 'running') {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        job = await api<Json>(s, 'GET', `/admin/restore-jobs/${job.id as string}`);
        const progress = job.progress as Json | null;
        const line = progress ? `${job.status as string}: ${String(progress.filesDone)}/${String(progress.filesTotal)} files, ${formatBytes(progress.bytesDone as number)}/${formatBytes(progress.bytesTotal as number)}` : (job.status as string);
        if (!json && line !== shown) console.error((shown = line));
      }
      print(json, job, () => restoreOutcome(job));
      return job.status === 'succeeded' ? 0 : 1;
    }
    if (command === 'alerts' && args[0] === 'ack') {
      if (!args[1]) throw new UsageError('name the alert: cairn alerts ack <id> (cairn alerts lists them)');
      const answer = await api(s, 'POST', `/admin/alerts/${encodeURIComponent(args[1])}/acknowledge`);
      print(json, answer, () => `Alert ${args[1]} acknowledged.`);
      return 0;
    }
    if (command === 'alerts' && args[0] === undefined) {
      const query = new URLSearchParams({ ...(values.state ? { state: values.state } : {}) });
      if (values.client) query.set('clientId', (await findClient(s, values.client)).id as string);
      const { alerts } = await api<{ alerts: Json[] }>(s, 'GET', `/admin/alerts?${query}`);
      print(json, { alerts }, () =>
        alerts.length === 0
          ? 'No alerts.'
          : alerts
              .map((a) => [a.id, a.state, a.severity, a.type, a.clientName ?? '-', time(a.openedAt), a.message].join('\t'))
              .join('\n'),
      );
      return 0;
    }
    if (command === 'verify' && args[0] === 'start') {
      const answer = await api(s, 'POST', '/admin/verify-runs');
      print(json, answer, () => 'Verify run started: it reads every pack; cairn verify shows how it goes.');
      return 0;
    }
    if (command === 'verify' && args[0] === undefined) {
      const report = await api<{ runs: Json[]; damaged: Json[] }>(s, 'GET', '/admin/verify-runs');
      print(json, report, () => {
        const runs = report.runs.map(
          (r) =>
            `${String(r.id)}\t${r.status as string}\t${r.trigger as string}\t${time(r.startedAt)}\tpacks ${String(r.packsChecked)}/${String(r.packsPlanned)}\tchunks ${String(r.chunksChecked)}\tdamaged ${String(r.damagedChunks)}${r.error ? `\t${r.error as string}` : ''}`,
        );
        const damaged = report.damaged.map((d) => {
          const affected = (d.affected as Json[]).map((a) => `${a.clientName as string}:${a.path as string}`);
          return `damaged ${d.sha256 as string} (${(d.problem as string | null) ?? 'unreadable'}): ${affected.join(', ') || 'no version refers to it'}`;
        });
        return [runs.length === 0 ? 'No verify runs yet.' : runs.join('\n'), ...(damaged.length === 0 ? ['Nothing is damaged.'] : damaged)].join('\n');
      });
      return 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify([command, ...args.slice(0, 1)].join(' '))}`);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`cairn: ${error.message}`);
      return 2;
    }
    if (error instanceof ApiError) {
      console.error(`cairn: ${error.message}`);
      return 1;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      console.error(`cairn: ${(error as Error).message}: not overwriting an existing file (choose another with -o)`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2), process.env);
