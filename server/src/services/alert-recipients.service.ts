import { and, eq, inArray, isNotNull } from 'drizzle-orm';
import type { AlertType } from '../alerts/alert-event.ts';
import { TYPE_LABELS } from '../alerts/notifiers/alert-digest.ts';
import { displayUrl } from '../alerts/notifiers/webhook-notifier.ts';
import type { AppContext } from '../app-context.ts';
import type { Db } from '../db/database.ts';
import { users } from '../db/schema.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { recordAudit } from './audit-log.service.ts';
import type { Actor } from './users.service.ts';

/** Server-wide alerts have no owner: they go to the ALERT_EMAIL_TO admins only, so a user cannot choose them. */
export const SERVER_WIDE_ALERT_TYPES: readonly AlertType[] = ['storage_filling', 'replica_lagging'];
export const USER_ALERT_TYPES = (Object.keys(TYPE_LABELS) as AlertType[]).filter((type) => !SERVER_WIDE_ALERT_TYPES.includes(type));

/**
 * One mailbox, no display name: it goes into an SMTP envelope as it is, so
 * no spaces, commas, angle brackets or control characters that could add a
 * second recipient or a header.
 */
const EMAIL_ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export interface AlertEmailSetting {
  /** null = no email to this user. */
  email: string | null;
  types: AlertType[];
}

/** Checks the form's values; errors name the field (`alertEmail`, `alertEmailTypes`). */
export function parseAlertEmailSetting(emailText: string, typeValues: readonly string[]): { setting: AlertEmailSetting | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const email = emailText.trim();
  if (email !== '' && (email.length > 254 || !EMAIL_ADDRESS.test(email))) errors.alertEmail = 'empty (no email) or one address such as name@example.com';
  const unknown = typeValues.filter((value) => !(USER_ALERT_TYPES as string[]).includes(value));
  if (unknown.length > 0) errors.alertEmailTypes = `unknown alert type: ${unknown.join(', ').slice(0, 100)}`;
  if (Object.keys(errors).length > 0) return { setting: null, errors };
  const types = USER_ALERT_TYPES.filter((type) => typeValues.includes(type));
  return { setting: { email: email === '' ? null : email, types }, errors };
}

export async function setUserAlertEmail(ctx: AppContext, userId: string, setting: AlertEmailSetting, actor: Actor): Promise<void> {
  const parsed = parseAlertEmailSetting(setting.email ?? '', setting.types);
  if (!parsed.setting) throw new BadRequestError(Object.entries(parsed.errors).map(([name, why]) => `${name}: ${why}`).join('; '));
  const { email, types } = parsed.setting;
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx.update(users).set({ alertEmail: email, alertEmailTypes: types }).where(eq(users.id, userId)).returning({ id: users.id });
    if (updated.length === 0) throw new NotFoundError('no such user');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.alert_email.update',
      targetType: 'user',
      targetId: userId,
      details: { email, types },
    });
  });
}

export interface UserAlertRecipient {
  userId: string;
  email: string;
  types: AlertType[];
}

/** Finds, at send time, the users among `ownerIds` with an address and at least one type chosen (disabled users get nothing). */
export type AlertRecipientLookup = (ownerIds: readonly string[]) => Promise<UserAlertRecipient[]>;

export function alertRecipientLookup(db: Db): AlertRecipientLookup {
  return async (ownerIds) => {
    if (ownerIds.length === 0) return [];
    const rows = await db
      .select({ userId: users.id, email: users.alertEmail, types: users.alertEmailTypes })
      .from(users)
      .where(and(inArray(users.id, [...ownerIds]), eq(users.disabled, false)));
    return rows.flatMap((row) => (row.email !== null && row.types.length > 0 ? [{ userId: row.userId, email: row.email, types: row.types }] : []));
  };
}

/** As for ALERT_WEBHOOK_SECRET. */
export const MIN_USER_WEBHOOK_SECRET_LENGTH = 16;
const MAX_WEBHOOK_URL_LENGTH = 2048;

export interface AlertWebhookSetting {
  /** null = no webhook (the stored secret goes with it). */
  url: string | null;
  /** A new secret; null = keep the stored one. */
  secret: string | null;
  types: AlertType[];
}

/**
 * Checks the webhook form's values; errors name the field (`alertWebhookUrl`,
 * `alertWebhookSecret`, `alertWebhookTypes`) and never quote the secret or
 * the URL (which may carry a token). An empty secret keeps the stored one,
 * so it is required only while none is stored.
 */
export function parseAlertWebhookSetting(
  urlText: string,
  secretText: string,
  typeValues: readonly string[],
  hasStoredSecret: boolean,
): { setting: AlertWebhookSetting | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const url = urlText.trim();
  const secret = secretText.trim();
  if (url !== '') {
    let valid = false;
    try {
      const parsed = new URL(url);
      valid = (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname !== '';
    } catch {
      // reported below
    }
    if (!valid || url.length > MAX_WEBHOOK_URL_LENGTH) errors.alertWebhookUrl = `empty (no webhook) or an http(s) URL of at most ${MAX_WEBHOOK_URL_LENGTH} characters`;
    if (secret === '' && !hasStoredSecret) errors.alertWebhookSecret = `required with a webhook URL: at least ${MIN_USER_WEBHOOK_SECRET_LENGTH} characters (try: openssl rand -hex 32)`;
  }
  if (secret !== '' && (secret.length < MIN_USER_WEBHOOK_SECRET_LENGTH || secret.length > 256 || !/^[\x21-\x7e]+$/.test(secret))) {
    errors.alertWebhookSecret = `${MIN_USER_WEBHOOK_SECRET_LENGTH} to 256 visible ASCII characters, no spaces (try: openssl rand -hex 32)`;
  }
  const unknown = typeValues.filter((value) => !(USER_ALERT_TYPES as string[]).includes(value));
  if (unknown.length > 0) errors.alertWebhookTypes = `unknown alert type: ${unknown.join(', ').slice(0, 100)}`;
  if (Object.keys(errors).length > 0) return { setting: null, errors };
  const types = USER_ALERT_TYPES.filter((type) => typeValues.includes(type));
  return { setting: { url: url === '' ? null : url, secret: url === '' || secret === '' ? null : secret, types }, errors };
}

/** Stores a user's webhook; the audit log gets the URL without query or credentials and whether the secret changed, never the secret. */
export async function setUserAlertWebhook(ctx: AppContext, userId: string, setting: AlertWebhookSetting, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const [current] = await tx.select({ secret: users.alertWebhookSecret }).from(users).where(eq(users.id, userId)).for('update');
    if (!current) throw new NotFoundError('no such user');
    const parsed = parseAlertWebhookSetting(setting.url ?? '', setting.secret ?? '', setting.types, current.secret !== null);
    if (!parsed.setting) throw new BadRequestError(Object.entries(parsed.errors).map(([name, why]) => `${name}: ${why}`).join('; '));
    const { url, secret, types } = parsed.setting;
    const storedSecret = url === null ? null : (secret ?? current.secret);
    await tx.update(users).set({ alertWebhookUrl: url, alertWebhookSecret: storedSecret, alertWebhookTypes: types }).where(eq(users.id, userId));
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.alert_webhook.update',
      targetType: 'user',
      targetId: userId,
      details: { url: url === null ? null : displayUrl(url), secretChanged: secret !== null, types },
    });
  });
}

export interface UserAlertWebhook {
  userId: string;
  url: string;
  secret: string;
  types: AlertType[];
}

/** Finds, at send time, the webhooks of the users among `ownerIds` that have one and at least one type chosen (disabled users get nothing). */
export type AlertWebhookLookup = (ownerIds: readonly string[]) => Promise<UserAlertWebhook[]>;

export function alertWebhookLookup(db: Db): AlertWebhookLookup {
  return async (ownerIds) => {
    if (ownerIds.length === 0) return [];
    const rows = await db
      .select({ userId: users.id, url: users.alertWebhookUrl, secret: users.alertWebhookSecret, types: users.alertWebhookTypes })
      .from(users)
      .where(and(inArray(users.id, [...ownerIds]), eq(users.disabled, false), isNotNull(users.alertWebhookUrl)));
    return rows.flatMap((row) => (row.url !== null && row.secret !== null && row.types.length > 0 ? [{ userId: row.userId, url: row.url, secret: row.secret, types: row.types }] : []));
  };
}
