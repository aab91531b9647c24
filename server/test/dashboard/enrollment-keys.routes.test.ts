import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { enrollmentKeys } from '../../src/db/schema.ts';
import { parseEnrollmentKeyForm } from '../../src/dashboard/enrollment-keys.routes.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { Browser, signedInUser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const keyIn = (body: string) => /value="(cairn_enroll_[^"]+)" id="enrollment-key"/.exec(body)?.[1];

describe.each(testDatabaseKinds())('dashboard enrollment keys (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let bob: Browser;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    ({ browser: admin } = await signedInUser(h, 'root', true));
    ({ id: aliceId, browser: alice } = await signedInUser(h, 'alice'));
    ({ id: bobId, browser: bob } = await signedInUser(h, 'bob'));
  });
  afterAll(() => h?.close());

  it('a user makes keys for themselves only: an ownerId in the form is ignored', async () => {
    await alice.get('/enrollment-keys');
    const created = await alice.post('/enrollment-keys', { uses: 'single', expiresIn: '', namePrefix: '', description: 'mine', ownerId: bobId });
    expect(created.status).toBe(200);
    const key = keyIn(created.body);
    expect(key).toBeDefined();
    const rows = await h.ctx.database.db.select().from(enrollmentKeys).where(eq(enrollmentKeys.description, 'mine'));
    expect(rows.map((r) => r.ownerId)).toEqual([aliceId]);
    expect(rows[0]?.expiresAt).toBeNull();
  });

  it('an admin fixes another owner', async () => {
    await admin.get('/enrollment-keys');
    const created = await admin.post('/enrollment-keys', { uses: 'multi', expiresIn: '7d', namePrefix: 'bob-', description: 'for bob', ownerId: bobId });
    expect(created.status).toBe(200);
    const [row] = await h.ctx.database.db.select().from(enrollmentKeys).where(eq(enrollmentKeys.description, 'for bob'));
    expect(row).toMatchObject({ ownerId: bobId, singleUse: false, namePrefix: 'bob-' });
  });

  it('users list only their own keys, and cannot revoke another user\'s (404)', async () => {
    const bobsPage = await bob.get('/enrollment-keys');
    expect(bobsPage.body).toContain('for bob');
    expect(bobsPage.body).not.toContain('mine');
    const [alicesKey] = await h.ctx.database.db.select().from(enrollmentKeys).where(eq(enrollmentKeys.description, 'mine'));
    const refused = await bob.post(`/enrollment-keys/${alicesKey!.id}/revoke`, {});
    expect(refused.status).toBe(404);
    const [still] = await h.ctx.database.db.select().from(enrollmentKeys).where(eq(enrollmentKeys.id, alicesKey!.id));
    expect(still?.revokedAt).toBeNull();
    await alice.get('/enrollment-keys');
    const revoked = await alice.post(`/enrollment-keys/${alicesKey!.id}/revoke`, {});
    expect(revoked.status).toBe(303);
    expect((await alice.get('/enrollment-keys')).body).toContain('>revoked<');
  });

  it('a bad form is a 400 naming the field', async () => {
    await alice.get('/enrollment-keys');
    const bad = await alice.post('/enrollment-keys', { uses: 'multi', expiresIn: '200d', namePrefix: '', description: '' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('at most 90d for a multi-use key');
    expect((await alice.post('/enrollment-keys/not-an-id/revoke', {})).status).toBe(400);
  });
});

describe('parseEnrollmentKeyForm', () => {
  const now = new Date('2026-01-10T00:00:00Z');
  const base = { description: '', uses: 'single', expiresIn: '', namePrefix: '', ownerId: 'x' };

  it.each([
    [{ uses: 'multi', expiresIn: '' }, 'expiresIn', 'a multi-use key needs an expiry'],
    [{ expiresIn: 'tomorrow' }, 'expiresIn', 'a duration such as 12h or 7d'],
    [{ uses: 'forever' }, 'uses', 'choose single-use or multi-use'],
    [{ namePrefix: 'a\u0007' }, 'namePrefix', 'no control characters'],
  ])('%j: %s', (patch, fieldName, message) => {
    const { settings, errors } = parseEnrollmentKeyForm({ ...base, ...patch }, now);
    expect(settings).toBeUndefined();
    expect(errors[fieldName]).toContain(message);
  });

  it('reads a multi-use key with an expiry and a prefix', () => {
    const { settings } = parseEnrollmentKeyForm({ ...base, uses: 'multi', expiresIn: '12h', namePrefix: ' web- ' }, now);
    expect(settings).toMatchObject({ singleUse: false, expiresAt: new Date('2026-01-10T12:00:00Z'), namePrefix: 'web-' });
  });
});
