import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { sha256Hex, type RegisterResponse } from '@cairn/shared';
import { auditLog, clients, enrollmentKeys } from '../../src/db/schema.ts';
import { revokeClientToken } from '../../src/services/clients.service.ts';
import { createEnrollmentKey, listEnrollmentKeys, revokeEnrollmentKey, type NewEnrollmentKey } from '../../src/services/enrollment-keys.service.ts';
import { setUserDisabled, SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { addUser, callApi, startHarness, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const inDays = (days: number) => new Date(Date.now() + days * 86_400_000);

describe.each(testDatabaseKinds())('enrollment keys (%s)', (kind) => {
  let h: Harness;
  let alice: Awaited<ReturnType<typeof addUser>>;

  beforeAll(async () => {
    h = await startHarness(kind);
    alice = await addUser(h, 'alice');
  });
  afterAll(() => h?.close());

  const newKey = (settings: Partial<NewEnrollmentKey> = {}) =>
    createEnrollmentKey(h.ctx, { ownerId: alice.id, singleUse: true, expiresAt: null, namePrefix: null, description: '', ...settings }, { userId: alice.id, name: 'alice' });
  const enroll = (enrollmentKey: string, clientName: string) =>
    callApi<RegisterResponse & { message: string }>(h, 'POST', '/enroll', { json: { enrollmentKey, clientName, hostname: `${clientName}.test` } });

  it('registers a new client of the key owner whose token works; only the key hash is stored', async () => {
    const { id, key } = await newKey({ description: 'web rollout' });
    expect(key).toMatch(/^cairn_enroll_[A-Za-z0-9_-]{43}$/);
    const result = await enroll(key, 'web-1');
    expect(result.status).toBe(200);
    const [client] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, result.body.clientId));
    expect(client?.ownerId).toBe(alice.id);
    expect(client?.tokenHash).toBe(sha256Hex(result.body.token));
    expect((await callApi(h, 'GET', '/config', { token: result.body.token })).status).toBe(200);
    const [row] = await h.ctx.database.db.select().from(enrollmentKeys).where(eq(enrollmentKeys.id, id));
    expect(row?.keyHash).toBe(sha256Hex(key));
    expect(JSON.stringify(row)).not.toContain(key);
    expect(row?.useCount).toBe(1);
  });

  it('a single-use key registers once; the second use is a 401 saying it was used', async () => {
    const { key } = await newKey();
    expect((await enroll(key, 'db-1')).status).toBe(200);
    const again = await enroll(key, 'db-2');
    expect(again.status).toBe(401);
    expect(again.body.message).toBe('enrollment key was already used (it is single-use)');
  });

  it('two agents racing for one single-use key get one client between them', async () => {
    const { key } = await newKey();
    const results = await Promise.all([enroll(key, 'race-a'), enroll(key, 'race-b'), enroll(key, 'race-c')]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401]);
  });

  it('a multi-use key registers many clients until it expires', async () => {
    const { id, key } = await newKey({ singleUse: false, expiresAt: inDays(7) });
    expect((await enroll(key, 'fleet-1')).status).toBe(200);
    expect((await enroll(key, 'fleet-2')).status).toBe(200);
    await h.ctx.database.db.update(enrollmentKeys).set({ expiresAt: sql`now() - interval '1 minute'` }).where(eq(enrollmentKeys.id, id));
    const expired = await enroll(key, 'fleet-3');
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/^enrollment key expired at \d{4}-/);
  });

  it('refuses unknown and revoked keys with a 401 naming the problem', async () => {
    const unknown = await enroll('cairn_enroll_nothing', 'x-1');
    expect(unknown.status).toBe(401);
    expect(unknown.body.message).toBe('enrollment key is not valid');
    const { id, key } = await newKey({ singleUse: false, expiresAt: inDays(1) });
    await revokeEnrollmentKey(h.ctx, id, SYSTEM_ACTOR);
    const revoked = await enroll(key, 'x-2');
    expect(revoked.status).toBe(401);
    expect(revoked.body.message).toBe('enrollment key was revoked');
  });

  it('refuses a key whose owner is disabled', async () => {
    const dave = await addUser(h, 'dave');
    const { key } = await createEnrollmentKey(h.ctx, { ownerId: dave.id, singleUse: true, expiresAt: null, namePrefix: null, description: '' }, SYSTEM_ACTOR);
    await setUserDisabled(h.ctx, dave.id, true, SYSTEM_ACTOR);
    const result = await enroll(key, 'daves');
    expect(result.status).toBe(401);
    expect(result.body.message).toBe("enrollment key's owner is disabled");
  });

  it('holds names to the key prefix (400 naming clientName) without using the key up', async () => {
    const { key } = await newKey({ namePrefix: 'prod-' });
    const wrong = await enroll(key, 'staging-1');
    expect(wrong.status).toBe(400);
    expect(wrong.body.message).toBe('clientName must start with "prod-" (this enrollment key\'s prefix)');
    expect((await enroll(key, 'prod-1')).status).toBe(200);
  });

  it('never takes over an existing client, so a revoked client stays revoked (409, key not used up)', async () => {
    const multi = await newKey({ singleUse: false, expiresAt: inDays(1) });
    const first = await enroll(multi.key, 'kept');
    await revokeClientToken(h.ctx, first.body.clientId, SYSTEM_ACTOR);
    const again = await enroll(multi.key, 'kept');
    expect(again.status).toBe(409);
    expect(again.body.message).toContain('clientName: a client named "kept" already exists');
    const [client] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, first.body.clientId));
    expect(client?.tokenHash).toBeNull();
    const single = await newKey();
    expect((await enroll(single.key, 'kept')).status).toBe(409);
    expect((await enroll(single.key, 'kept-2')).status).toBe(200);
  });

  it('refuses a multi-use key without an expiry, or one too far out, naming expiresAt', async () => {
    await expect(newKey({ singleUse: false, expiresAt: null })).rejects.toThrow('expiresAt: a multi-use key needs an expiry');
    await expect(newKey({ singleUse: false, expiresAt: inDays(365) })).rejects.toThrow('expiresAt: a multi-use key expires within 90 days');
    await expect(newKey({ expiresAt: inDays(-1) })).rejects.toThrow('expiresAt: must be in the future');
  });

  it('audits creation, enrollment and revocation without the key or the token', async () => {
    const { id, key } = await newKey();
    const result = await enroll(key, 'audited');
    await revokeEnrollmentKey(h.ctx, id, SYSTEM_ACTOR);
    const entries = await h.ctx.database.db.select().from(auditLog);
    const actions = entries.filter((e) => e.targetId === id || e.targetId === result.body.clientId).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['enrollment_key.create', 'client.enroll', 'enrollment_key.revoke']));
    expect(JSON.stringify(entries)).not.toContain(key);
    expect(JSON.stringify(entries)).not.toContain(result.body.token);
  });

  it('lists only the owner\'s keys when filtered', async () => {
    const erin = await addUser(h, 'erin');
    await createEnrollmentKey(h.ctx, { ownerId: erin.id, singleUse: true, expiresAt: null, namePrefix: null, description: 'erin' }, SYSTEM_ACTOR);
    const erins = await listEnrollmentKeys(h.ctx.database.db, { ownerId: erin.id });
    expect(erins.map((k) => k.description)).toEqual(['erin']);
    expect((await listEnrollmentKeys(h.ctx.database.db)).length).toBeGreaterThan(1);
  });

  it('a bad body is a 400 naming the field', async () => {
    const result = await callApi<{ message: string }>(h, 'POST', '/enroll', { json: { clientName: 'x', hostname: 'x' } });
    expect(result.status).toBe(400);
    expect(result.body.message).toContain('enrollmentKey');
  });
});
