/**
 * Server-side sessions (issue 14): a cookie copied before sign-out, a
 * password change or a reset stops working; disabling a user ends theirs;
 * the user's page lists their sessions and revokes each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../../src/dashboard/session.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

describe.each(testDatabaseKinds())('revocable sessions (%s)', (kind) => {
  let h: DashboardHarness;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, 'root', 'root-password-1', true);
    await addUser(h.ctx, 'gina', 'gina-password-1');
  });

  afterAll(async () => {
    await h?.close();
  });

  /** The page as a browser holding only the copied cookie header would see it. */
  const asCopy = (cookie: string, url = '/') => fetch(h.url + url, { redirect: 'manual', headers: { cookie } });

  it('refuses a session cookie copied before sign-out, after it', async () => {
    const gina = new Browser(h.url);
    expect((await gina.login('gina', 'gina-password-1')).status).toBe(303);
    await gina.get('/');
    const copied = `${SESSION_COOKIE}=${gina.cookies.get(SESSION_COOKIE)}`;
    expect((await asCopy(copied)).status).toBe(200);
    expect((await gina.post('/logout', {})).status).toBe(303);
    const after = await asCopy(copied);
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toMatch(/^\/login/);
  });
});
