/**
 * The client page's whole picture (issue 13): the agent's local
 * configuration beside the central one, the paged run history, the file
 * search and the deleted-files view, against a real server and database,
 * with the data sent through the agent API.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/database.ts';
import { createDashboardRepository, fileSearchQuery } from '../../src/dashboard/dashboard.repository.ts';
import { fileSearchPatterns, type FileSearchPatterns } from '../../src/dashboard/file-search.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const LOCAL_CONFIG = {
  monitoredPaths: ['/srv/local-data', '/home/alice'],
  excludes: ['**/*.tmp'],
  preCommands: [{ command: 'echo <local-dump> && sync', timeoutSeconds: 600 }],
  allowRemoteCommands: false,
  remoteCommandAllowlist: null,
  backupIntervalSeconds: 7200,
};

const links = (body: string, pattern: RegExp) => [...body.matchAll(pattern)].map((m) => m[1]!.replaceAll('&amp;', '&'));

describe.each(testDatabaseKinds())('the client page (%s)', (kind) => {
  let h: DashboardHarness;
  let alice: Browser;
  let bob: Browser;
  let agent: TestAgent;
  let bobAgent: TestAgent;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, 'alice', 'alice-password-1');
    await addUser(h.ctx, 'bob', 'bob-password-1');
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, 'bob', 'bob-password-1', 'bob-server');
    alice = new Browser(h.url);
    bob = new Browser(h.url);
    expect((await alice.login('alice', 'alice-password-1')).status).toBe(303);
    expect((await bob.login('bob', 'bob-password-1')).status).toBe(303);
  });

  afterAll(async () => h?.close());

  it('shows the agent\u2019s local configuration beside the central one, each marked, and keeps it through an old agent\u2019s ping', async () => {
    await alice.get(`/clients/${agent.clientId}`);
    expect((await alice.post(`/clients/${agent.clientId}/config`, { monitoredPaths: '/home/alice', excludes: '**/node_modules/**', preCommands: '[5m] pg_dump app > /srv/app.sql', backupInterval: '1h', scheduleKind: 'interval' })).status).toBe(303);
    let page = (await alice.get(`/clients/${agent.clientId}`)).body;
    expect(page).toContain('the agent has not reported its local configuration');

    // A property the protocol does not name (here a secret a buggy agent might add) is never stored.
    await agent.ping({ localConfig: { ...LOCAL_CONFIG, password: 'hunter2-secret' } });
    page = (await alice.get(`/clients/${agent.clientId}`)).body;
    const card = page.slice(page.indexOf('id="agent-config"'), page.indexOf('id="settings"'));
    expect(card).toMatch(/<code>\/srv\/local-data<\/code> <span class="badge source-local">local<\/span>/);
    // In both: one row, marked twice.
    expect(card).toMatch(/<code>\/home\/alice<\/code> <span class="badge source-central">central<\/span> <span class="badge source-local">local<\/span>/);
    expect(card).toMatch(/<code>\*\*\/node_modules\/\*\*<\/code> <span class="badge source-central">central<\/span>/);
    expect(card).toMatch(/<code>\*\*\/\*\.tmp<\/code> <span class="badge source-local">local<\/span>/);
    // Escaped, in run order (central first), and the central one refused by this agent.
    expect(card.indexOf('pg_dump app')).toBeLessThan(card.indexOf('echo &lt;local-dump&gt; &amp;&amp; sync'));
    expect(card).toContain('refused by the agent');
    expect(card).toContain('ALLOW_REMOTE_COMMANDS=false');
    expect(card).toContain('<span class="small">every 2 h (BACKUP_INTERVAL on the agent)');
    expect(card).toContain('timeout 10 min');
    const [stored] = rowsOf<{ local_config: unknown }>(await h.ctx.database.db.execute(sql`select local_config from clients where id = ${agent.clientId}`));
    expect(JSON.stringify(stored!.local_config)).not.toContain('hunter2');

    // An agent that does not report (older versions) still pings; the last report stays.
    expect(await agent.ping()).toMatchObject({ runRequested: false });
    expect((await alice.get(`/clients/${agent.clientId}`)).body).toContain('/srv/local-data');
  });

  it('refuses a local configuration report the schema does not allow with a 400 naming the field', async () => {
    const answer = await agent.request('POST', '/ping', { state: 'idle', localConfig: { ...LOCAL_CONFIG, monitoredPaths: ['/bad\u0000path'] } });
    expect(answer.status).toBe(400);
    expect(String(answer.body.message)).toContain('localConfig/monitoredPaths/0');
  });

  it('pages the whole run history, newest first, filters it by status, and keeps the client page\u2019s 20', async () => {
    for (let i = 0; i < 55; i += 1) {
      await agent.backup([{ path: '/home/alice/counter.txt', content: `run ${i}` }], { status: i === 3 ? 'failed' : 'succeeded' });
    }
    const client = (await alice.get(`/clients/${agent.clientId}`)).body;
    expect(client.match(/<tr id="run-/g)).toHaveLength(20);
    expect(client).toContain(`href="/clients/${agent.clientId}/runs">All runs`);

    const first = await alice.get(`/clients/${agent.clientId}/runs`);
    expect(first.status).toBe(200);
    const firstIds = links(first.body, /<tr id="run-([0-9a-f-]{36})"/g);
    expect(firstIds).toHaveLength(50);
    const [older] = links(first.body, /<a rel="next" href="([^"]+)"/g);
    const second = await alice.get(older!);
    const secondIds = links(second.body, /<tr id="run-([0-9a-f-]{36})"/g);
    expect(secondIds).toHaveLength(5);
    expect(new Set([...firstIds, ...secondIds]).size).toBe(55);
    expect(second.body).not.toContain('rel="next"');
    expect(second.body).toContain('← Newest');

    const failed = await alice.get(`/clients/${agent.clientId}/runs?status=failed`);
    expect(links(failed.body, /<tr id="run-([0-9a-f-]{36})"/g)).toHaveLength(1);
    expect((await alice.get(`/clients/${agent.clientId}/runs?status=bogus`)).status).toBe(400);
    // A page key that is not a run of this client.
    const bobRun = await bobAgent.backup([{ path: '/srv/bob.txt', content: 'bob' }]);
    const foreign = await alice.get(`/clients/${agent.clientId}/runs?before=${bobRun}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body).toContain('before');
  });

  it('finds files by name or path, case-insensitively, across current and deleted versions, paged', async () => {
    const files = Array.from({ length: 130 }, (_, i) => ({ path: `/home/alice/reports/Report-${String(i).padStart(3, '0')}.md`, content: `report ${i}` }));
    files.push({ path: '/home/alice/db/app.sql', content: 'create table t();' }, { path: '/home/alice/db/old.sql', content: 'old' }, { path: '/home/alice/notes_50%.txt', content: 'n' });
    await agent.backup(files);
    await agent.backup([], { deletes: ['/home/alice/db/old.sql'] });

    const name = await alice.get(`/clients/${agent.clientId}/search?q=REPORT-12`);
    expect(name.status).toBe(200);
    const hits = links(name.body, /<td class="path mono small"><a href="([^"]+)"/g);
    expect(hits).toHaveLength(10);
    expect(hits[0]).toBe(`/clients/${agent.clientId}/versions?path=%2Fhome%2Falice%2Freports%2FReport-120.md`);

    const glob = (await alice.get(`/clients/${agent.clientId}/search?q=${encodeURIComponent('*.sql')}`)).body;
    expect(glob).toContain('/home/alice/db/app.sql');
    expect(glob).toMatch(/old\.sql<\/a><\/td>\s*<td><span class="badge bad">deleted<\/span>/);
    // LIKE's own wildcards match themselves.
    const percent = (await alice.get(`/clients/${agent.clientId}/search?q=${encodeURIComponent('50%')}`)).body;
    expect(links(percent, /<td class="path mono small"><a href="([^"]+)"/g)).toHaveLength(1);
    // With a slash, the path: the folder name matches, not only the file name.
    const path = (await alice.get(`/clients/${agent.clientId}/search?q=${encodeURIComponent('alice/db/')}`)).body;
    expect(links(path, /<td class="path mono small"><a href="([^"]+)"/g)).toHaveLength(2);
    expect(links((await alice.get(`/clients/${agent.clientId}/search?q=db`)).body, /<td class="path mono small"><a href="([^"]+)"/g)).toHaveLength(0);

    // 130 reports: a page of 100, then 30.
    const all = await alice.get(`/clients/${agent.clientId}/search?q=report-`);
    expect(links(all.body, /<td class="path mono small"><a href="([^"]+)"/g)).toHaveLength(100);
    const [more] = links(all.body, /<a rel="next" href="([^"]+)"/g);
    const rest = await alice.get(more!);
    const restHits = links(rest.body, /<td class="path mono small"><a href="([^"]+)"/g);
    expect(restHits).toHaveLength(30);
    expect(restHits[29]).toContain('Report-129.md');
    expect(rest.body).not.toContain('rel="next"');

    expect((await alice.get(`/clients/${agent.clientId}/search?q=${'x'.repeat(201)}`)).status).toBe(400);
    expect((await alice.get(`/clients/${agent.clientId}/search?q=a&after=abc`)).status).toBe(400);
    expect((await alice.get(`/clients/${agent.clientId}/search?q=a&after=999999999`)).status).toBe(400);
    expect((await alice.get(`/clients/${agent.clientId}/search`)).body).not.toContain('Nothing found');
  });

  it('lists deleted files newest first with a download of their last version, until they come back', async () => {
    await agent.backup([{ path: '/home/alice/gone/a.txt', content: 'a was here' }, { path: '/home/alice/gone/b.txt', content: 'b' }, { path: '/home/alice/kept.txt', content: 'k' }]);
    await agent.backup([], { deletes: ['/home/alice/gone/a.txt'] });
    await agent.backup([], { deletes: ['/home/alice/gone/b.txt'] });
    const page = await alice.get(`/clients/${agent.clientId}/deleted`);
    expect(page.status).toBe(200);
    const paths = links(page.body, /<td class="path mono small"><a href="[^"]+path=([^"]+)"/g).map(decodeURIComponent);
    expect(paths.slice(0, 3)).toEqual(['/home/alice/gone/b.txt', '/home/alice/gone/a.txt', '/home/alice/db/old.sql']);
    expect(page.body).toContain('latest run');
    const [download] = links(page.body.slice(page.body.indexOf('gone/a.txt')), /href="([^"]+\/download)"/g);
    const bytes = await fetch(h.url + download!, { headers: { cookie: alice.cookieHeader() } });
    expect(await bytes.text()).toBe('a was here');

    const folder = await alice.get(`/clients/${agent.clientId}/deleted?path=${encodeURIComponent('/home/alice/gone')}`);
    expect(links(folder.body, /<td class="path mono small"><a href="[^"]+path=([^"]+)"/g)).toHaveLength(2);
    // Backed up again: no longer deleted.
    await agent.backup([{ path: '/home/alice/gone/a.txt', content: 'a is back' }]);
    const after = await alice.get(`/clients/${agent.clientId}/deleted?path=${encodeURIComponent('/home/alice/gone')}`);
    expect(links(after.body, /<td class="path mono small"><a href="[^"]+path=([^"]+)"/g).map(decodeURIComponent)).toEqual(['/home/alice/gone/b.txt']);
    expect((await alice.get(`/clients/${agent.clientId}/deleted?path=relative`)).status).toBe(400);
    expect((await alice.get(`/clients/${agent.clientId}/deleted?before=0`)).status).toBe(400);
  });

  it('pages the deleted files', async () => {
    const many = Array.from({ length: 105 }, (_, i) => `/home/alice/tmp/t${i}.txt`);
    await agent.backup(many.map((path) => ({ path, content: path })));
    await agent.backup([], { deletes: many });
    const first = await alice.get(`/clients/${agent.clientId}/deleted?path=${encodeURIComponent('/home/alice/tmp')}`);
    expect(links(first.body, /<td class="path mono small"><a href="([^"]+)"/g)).toHaveLength(100);
    const [older] = links(first.body, /<a rel="next" href="([^"]+)"/g);
    const second = await alice.get(older!);
    const firstPaths = links(first.body, /<td class="path mono small"><a href="([^"]+)"/g);
    const secondPaths = links(second.body, /<td class="path mono small"><a href="([^"]+)"/g);
    expect(secondPaths).toHaveLength(5);
    expect(new Set([...firstPaths, ...secondPaths]).size).toBe(105);
  });

  it('answers 404 for another user\u2019s client on every new page', async () => {
    for (const url of ['/runs', '/search?q=report', '/deleted']) {
      expect((await bob.get(`/clients/${agent.clientId}${url}`)).status, url).toBe(404);
    }
    expect((await alice.get(`/clients/${bobAgent.clientId}/search?q=bob`)).status).toBe(404);
  });

  it('a name search reads the trigram index of the client\u2019s names (EXPLAIN on 100,000 paths)', async () => {
    const db = h.ctx.database.db;
    await db.execute(sql`
      insert into client_paths (client_id, path)
      select ${bobAgent.clientId}, '/srv/data/dir' || (i % 500) || '/' || (array['report','notes','main','invoice'])[1 + i % 4] || '_' || md5(i::text) || '.txt'
      from generate_series(1, 100000) i`);
    const repo = createDashboardRepository(db);
    const patterns = fileSearchPatterns('invoice_3f2a') as FileSearchPatterns;
    await repo.searchPaths(bobAgent.clientId, patterns, { limit: 100 });
    await db.execute(sql`analyze client_paths`);
    await db.execute(sql`analyze client_path_names`);
    const plan = rowsOf<{ 'QUERY PLAN': string }>(await db.execute(sql`explain ${fileSearchQuery(bobAgent.clientId, patterns, { limit: 100 })}`))
      .map((row) => row['QUERY PLAN'])
      .join('\n');
    expect(plan).toContain('client_path_names_search_idx');
  });
});
