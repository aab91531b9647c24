/**
 * What the dashboard says about a client's state and when things happened:
 * health from the last run (a pre-command failure included) and from never
 * having backed up, log lines ordered by the server's receive time, times
 * with seconds and their UTC spelling, and run triggers in words.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = { username: 'root', password: 'root-password-1' };
const UTC_SECONDS = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;

/** The number on one of the overview's health tiles. */
function tile(body: string, health: string): number {
  const match = new RegExp(`class="stat stat-${health}"[^>]*><span class="stat-value">(\\d+)<`).exec(body);
  if (!match) throw new Error(`no ${health} tile on the overview`);
  return Number(match[1]);
}

/** The health badge in a client's row of the clients list. */
function healthOf(body: string, clientName: string): string {
  const row = body.split('<tr>').find((r) => r.includes(`>${clientName}</a>`));
  const match = row && /class="badge health-([a-z]+)">([^<]+)</.exec(row);
  if (!match) throw new Error(`no health badge for ${clientName}`);
  return `${match[1]}: ${match[2]}`;
}

/** Every `<time>` element: its datetime attribute, title and text. */
function times(body: string): { datetime: string; title: string; text: string }[] {
  return [...body.matchAll(/<time datetime="([^"]+)" title="([^"]+)"[^>]*>([^<]*)<\/time>/g)].map((m) => ({ datetime: m[1]!, title: m[2]!, text: m[3]! }));
}

describe.each(testDatabaseKinds())('dashboard status and times (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let dumper: TestAgent;
  let fresh: TestAgent;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
    dumper = await TestAgent.register(h.url, ADMIN.username, ADMIN.password, 'db-01');
    await dumper.backup([{ path: '/var/backups/app.sql', content: 'create table t (id int);\n' }]);
    // The backup itself went through, but the dump before it failed: the run is partial.
    await dumper.backup([{ path: '/etc/hosts', content: '127.0.0.1 localhost\n' }], {
      status: 'partial',
      preCommands: [{ command: 'pg_dump -U app app > /var/backups/app.sql', source: 'server', exitCode: 1, durationMs: 312, timedOut: false, output: 'pg_dump: error: role "app" does not exist\n' }],
    });
    await dumper.ping();
    fresh = await TestAgent.register(h.url, ADMIN.username, ADMIN.password, 'fresh-01');
    await fresh.ping();
    admin = new Browser(h.url);
    expect((await admin.login(ADMIN.username, ADMIN.password)).status).toBe(303);
  });

  afterAll(async () => {
    await h?.close();
  });

  it('counts a client whose last run ended partial (a failed pre-command) as failing, until a run succeeds', async () => {
    expect(healthOf((await admin.get('/clients')).body, 'db-01')).toBe('failing: Failing');
    const overview = (await admin.get('/')).body;
    expect(tile(overview, 'failing')).toBe(1);
    expect(tile(overview, 'ok')).toBe(0);
    expect((await admin.get('/clients?health=failing')).body).toContain('>db-01</a>');
    const client = (await admin.get(`/clients/${dumper.clientId}`)).body;
    expect(client).toContain('health-failing');
    expect(client).toContain('The last run ended partial: a pre-command failed (<code>pg_dump -U app app &gt; /var/backups/app.sql</code>)');

    await dumper.backup([{ path: '/var/backups/app.sql', content: 'create table t (id int, name text);\n' }]);
    expect(healthOf((await admin.get('/clients')).body, 'db-01')).toBe('ok: On time');
    expect(tile((await admin.get('/')).body, 'failing')).toBe(0);
  });

  it('shows a client that never backed up as never backed up, not on time', async () => {
    expect(healthOf((await admin.get('/clients')).body, 'fresh-01')).toBe('never: Never backed up');
    const overview = (await admin.get('/')).body;
    expect(tile(overview, 'never')).toBe(1);
    expect(overview).toContain('Never backed up');
    expect((await admin.get('/clients?health=never')).body).toContain('>fresh-01</a>');
  });

  it('orders log lines by the time the server received them and shows the agent time beside it', async () => {
    const yearAhead = new Date(Date.now() + 365 * 86_400_000).toISOString();
    await fresh.sendLogs([{ level: 'info', message: 'sent by an agent a year ahead', at: yearAhead }]);
    await fresh.sendLogs([{ level: 'debug', message: 'sent later with a right clock' }]);
    const page = (await admin.get(`/clients/${fresh.clientId}/logs`)).body;
    expect(page.indexOf('sent later with a right clock')).toBeGreaterThan(-1);
    expect(page.indexOf('sent later with a right clock')).toBeLessThan(page.indexOf('sent by an agent a year ahead'));
    expect(page).toContain('Agent time');
    const shown = times(page).map((t) => t.datetime);
    expect(shown).toContain(yearAhead);
    // The receive time is the one in the first column: not a year ahead.
    const received = times(page.slice(page.indexOf('<tbody>')))[0]!;
    expect(Date.parse(received.datetime)).toBeLessThan(Date.now() + 60_000);
    expect((await admin.get(`/clients/${fresh.clientId}/logs?level=debug`)).body).not.toContain('a year ahead');
  });

  it('pages log lines by receive time, lines of one batch in the order they were sent', async () => {
    const agent = await TestAgent.register(h.url, ADMIN.username, ADMIN.password, 'chatty-01');
    await agent.sendLogs(Array.from({ length: 205 }, (_, i) => ({ level: 'info' as const, message: `line ${String(i).padStart(3, '0')}` })));
    const first = (await admin.get(`/clients/${agent.clientId}/logs`)).body;
    expect(first).toContain('line 204');
    expect(first).toContain('line 005');
    expect(first).not.toContain('line 004');
    expect(first.indexOf('line 204')).toBeLessThan(first.indexOf('line 005'));
    const older = /href="([^"]*before=[^"]*)"/.exec(first)?.[1]?.replaceAll('&amp;', '&');
    expect(older).toBeDefined();
    const second = (await admin.get(older!)).body;
    expect(second).toContain('line 004');
    expect(second).toContain('line 000');
    expect(second).not.toContain('line 005');
    expect(second).not.toMatch(/href="[^"]*before=/);
    expect((await admin.get(`/clients/${agent.clientId}/logs?before=soon`)).status).toBe(400);
  });

  it('shows times to the second, as <time> elements with the UTC time in the title', async () => {
    const page = (await admin.get(`/clients/${dumper.clientId}`)).body;
    const shown = times(page);
    expect(shown.length).toBeGreaterThan(3);
    for (const time of shown) {
      expect(time.title).toMatch(UTC_SECONDS);
      expect(time.title).toBe(`${time.datetime.slice(0, 10)} ${time.datetime.slice(11, 19)} UTC`);
    }
    // Absolute times (the runs table) are written out in UTC with seconds until the script makes them local.
    expect(shown.filter((t) => UTC_SECONDS.test(t.text)).length).toBeGreaterThanOrEqual(3);
    const versions = (await admin.get(`/clients/${dumper.clientId}/versions?path=/var/backups/app.sql`)).body;
    expect(times(versions).filter((t) => UTC_SECONDS.test(t.text)).length).toBeGreaterThanOrEqual(2);
  });

  it('serves the script that shows times in local time, allowed by the Content-Security-Policy without inline script', async () => {
    const page = await admin.get('/');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const scripts = [...page.body.matchAll(/<script([^>]*)>/g)].map((m) => m[1]!);
    expect(scripts.every((attributes) => / src="\/static\/[^"]+\.js"/.test(attributes))).toBe(true);
    const src = / src="(\/static\/[^"]+\.js)"/.exec(scripts[0]!)![1]!;
    const script = await fetch(`${h.url}${src}`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect(await script.text()).toContain('time[datetime]');
  });

  it('names run triggers in words', async () => {
    const page = (await admin.get(`/clients/${dumper.clientId}`)).body;
    expect(page).toContain('<td>scheduled</td>');
    expect(page).not.toContain('<td>schedule</td>');
  });
});
