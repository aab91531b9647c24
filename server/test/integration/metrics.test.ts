import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import { ConfigError } from '@cairn/shared';
import { buildApp } from '../../src/app.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { ne } from 'drizzle-orm';
import { alerts, clients } from '../../src/db/schema.ts';
import { startPeriodicJobs } from '../../src/jobs/periodic-jobs.ts';
import { addUser, callApi, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const TOKEN = 'metrics-token-0123456789abcdef0123456789';
/** A client name with every character the exposition format must escape. */
const ODD_NAME = 'quote " backslash \\ newline \n end';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// Values are what Go's ParseFloat reads (the format says so): it takes "NaN" in any case, and prom-client writes "Nan".
const SAMPLE_LINE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? ([Nn][Aa][Nn]|[+-]Inf|[+-]?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)(?: -?\\d+)?$`,
);
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

const unescapeLabel = (value: string) => value.replace(/\\([\\"n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));

/**
 * A strict reading of the Prometheus text exposition format (0.0.4): every
 * line is a HELP, a TYPE or a sample; each family is declared once, before its
 * samples; a sample belongs to a declared family (histograms add _bucket,
 * _sum and _count). Throws naming the first line that breaks a rule.
 */
function parseExposition(text: string): Sample[] {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  expect(text.endsWith('\n'), 'ends with a newline').toBe(true);
  for (const [index, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    const comment = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (comment) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`${where}: second HELP`);
        if (/\\(?![\\n])/.test(rest)) throw new Error(`${where}: bad escape in HELP`);
        helps.add(name);
      } else {
        if (types.has(name) || !TYPES.has(rest)) throw new Error(`${where}: bad or second TYPE`);
        types.set(name, rest);
      }
      continue;
    }
    if (line.startsWith('#')) throw new Error(`${where}: unknown comment`);
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`${where}: not a sample line`);
    const name = match[1]!;
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((candidate) => types.has(candidate));
    if (family === undefined) throw new Error(`${where}: sample before its TYPE`);
    if (family !== name && !['histogram', 'summary'].includes(types.get(family)!)) throw new Error(`${where}: suffix on a ${types.get(family)}`);
    const labels: Record<string, string> = {};
    for (const [, label, value] of (match[2] ?? '').matchAll(LABEL_PAIR)) labels[label!] = unescapeLabel(value!);
    samples.push({ name, labels, value: Number(match[3]) });
  }
  return samples;
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const valueOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) => {
  const found = find(samples, name, labels);
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]!.value;
};

describe('METRICS_TOKEN', () => {
  it('is refused at start-up when short or not a plain header value, and read when good', () => {
    for (const bad of ['too-short', `${'x'.repeat(40)} spaced`, `${'x'.repeat(40)}\u00e9`]) {
      expect(() => loadServerConfig({ METRICS_TOKEN: bad }), bad).toThrow(ConfigError);
      expect(() => loadServerConfig({ METRICS_TOKEN: bad }), bad).toThrow(/METRICS_TOKEN must be at least 32 visible ASCII characters/);
    }
    expect(loadServerConfig({ METRICS_TOKEN: TOKEN }).metricsToken).toBe(TOKEN);
    expect(loadServerConfig({ METRICS_TOKEN: '' }).metricsToken).toBeUndefined();
  });
});

describe.each(testDatabaseKinds())('GET /metrics (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind, { METRICS_TOKEN: TOKEN, GC_INTERVAL_SECONDS: '10' });
  });
  afterAll(() => h?.close());

  const scrape = async (authorization: string | null = `Bearer ${TOKEN}`) => {
    const response = await request(`${h.url}/metrics`, { headers: authorization === null ? {} : { authorization } });
    return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
  };

  it('answers 401 without the token, with a wrong one, and with the token not sent as a bearer', async () => {
    for (const authorization of [null, `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`]) {
      const response = await scrape(authorization);
      expect(response.status, String(authorization)).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(response.text).not.toContain('cairn_');
    }
  });

  it('is not there at all (404) when METRICS_TOKEN is unset', async () => {
    const app = await buildApp({ ...h.ctx, config: { ...h.ctx.config, metricsToken: undefined } });
    try {
      const response = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
      expect(response.statusCode).toBe(404);
    } finally {
      await app.close();
    }
  });

  it('reports the runs, bytes, health and last successes the database holds, with odd names escaped', async () => {
    const stats = (bytesUploaded: number) => ({ filesScanned: 1, filesChanged: 1, filesDeleted: 0, filesFailed: 0, bytesScanned: 1, bytesUploaded });
    const alice = await addUser(h, 'alice');
    const bob = await addUser(h, 'bob');
    const odd = await registerAgent(h, alice, ODD_NAME);
    const partial = await registerAgent(h, bob, 'laptop');
    const never = await registerAgent(h, bob, 'never');
    const run = async (agent: { token: string }, status: 'succeeded' | 'partial' | 'failed', bytesUploaded: number, newBytes?: Buffer) => {
      const runId = (await callApi<{ runId: string }>(h, 'POST', '/runs', { token: agent.token, json: { trigger: 'manual' } })).body.runId;
      if (newBytes) expect((await upload(h, agent.token, [newBytes], `?runId=${runId}`)).status).toBe(200);
      const finish = await callApi(h, 'POST', `/runs/${runId}/finish`, { token: agent.token, json: { status, stats: stats(bytesUploaded), preCommands: [] } });
      expect(finish.status).toBe(200);
    };
    await run(odd, 'failed', 100);
    await run(odd, 'succeeded', 200, Buffer.alloc(37, 'a'));
    await run(odd, 'succeeded', 300);
    await run(partial, 'partial', 400, Buffer.alloc(11, 'b'));
    expect((await callApi(h, 'POST', '/runs', { token: never.token, json: { trigger: 'manual' } })).status).toBe(200);

    const response = await scrape();
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const samples = parseExposition(response.text);

    expect(Object.fromEntries(find(samples, 'cairn_backup_runs').map((s) => [s.labels.status, s.value]))).toEqual({
      running: 1,
      succeeded: 2,
      partial: 1,
      failed: 1,
    });
    expect(valueOf(samples, 'cairn_backup_uploaded_bytes')).toBe(1000);
    expect(valueOf(samples, 'cairn_backup_new_bytes')).toBe(48);
    expect(valueOf(samples, 'cairn_stored_bytes')).toBe(48);
    expect(Object.fromEntries(find(samples, 'cairn_clients').map((s) => [s.labels.health, s.value]))).toEqual({
      ok: 1,
      late: 0,
      never: 1,
      offline: 0,
      failing: 1,
    });

    const rows = await h.ctx.database.db.select({ id: clients.id, lastBackupAt: clients.lastBackupAt }).from(clients);
    const lastBackup = new Map(rows.map((row) => [row.id, row.lastBackupAt]));
    const successes = find(samples, 'cairn_client_last_success_timestamp_seconds');
    expect(successes.map((s) => s.labels).sort((a, b) => a.client_name!.localeCompare(b.client_name!))).toEqual([
      { client_id: partial.clientId, client_name: 'laptop' },
      { client_id: odd.clientId, client_name: ODD_NAME },
    ]);
    for (const sample of successes) expect(sample.value).toBe(lastBackup.get(sample.labels.client_id!)!.getTime() / 1000);
    expect(response.text).toContain(`client_name="quote \\" backslash \\\\ newline \\n end"`);

    // Open alerts by type, as the alerts table has them (the failed and partial runs above opened some).
    expect(response.text).toContain('# TYPE cairn_alerts_open gauge');
    const unresolved = await h.ctx.database.db.select({ type: alerts.type }).from(alerts).where(ne(alerts.state, 'resolved'));
    const expected: Record<string, number> = {};
    for (const row of unresolved) expected[row.type] = (expected[row.type] ?? 0) + 1;
    expect(unresolved.length).toBeGreaterThan(0);
    expect(Object.fromEntries(find(samples, 'cairn_alerts_open').map((s) => [s.labels.type, s.value]))).toEqual(expected);
    // prom-client's process metrics.
    expect(find(samples, 'process_cpu_user_seconds_total')).toHaveLength(1);
  });

  it('times requests by route pattern, never by raw URL', async () => {
    await request(`${h.url}/no/such/${crypto.randomUUID()}`).then((r) => r.body.dump());
    const samples = parseExposition((await scrape()).text);
    const counts = find(samples, 'cairn_http_request_duration_seconds_count');
    const routes = new Set(counts.map((s) => s.labels.route));
    expect(routes).toContain('/api/v1/runs/:runId/finish');
    expect(routes).toContain('unmatched');
    expect([...routes].filter((route) => /[0-9a-f]{8}-[0-9a-f]{4}/.test(route ?? ''))).toEqual([]);
    expect(valueOf(samples, 'cairn_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/runs/:runId/finish', status_code: '200' })).toBeGreaterThanOrEqual(4);
  });

  it('records each periodic job run in its histogram', async () => {
    const gcRuns = async () => find(parseExposition((await scrape()).text), 'cairn_job_duration_seconds_count', { job: 'gc', outcome: 'succeeded' })[0]?.value ?? 0;
    const before = await gcRuns();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const jobs = startPeriodicJobs(h.ctx);
    vi.advanceTimersByTime(10_000);
    vi.useRealTimers();
    await jobs.stop();
    expect(await gcRuns()).toBe(before + 1);
  });
});
