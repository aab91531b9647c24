/**
 * The prune simulator's answer as the pages show it (views/_prune-preview.eta):
 * one client's previewClientPrune, or several summed for a user's page.
 */
import { isPruningHeld } from '../alerts/alert-engine.ts';
import type { AppContext } from '../app-context.ts';
import { BadRequestError } from '../errors.ts';
import { listClients } from '../services/clients.service.ts';
import { effectiveRetentionPolicy, type RetentionPolicy } from '../services/retention-policy.ts';
import { effectiveStoredRules, type StoredRetentionRules } from '../services/retention-rules.ts';
import { RESTORE_POINT_FIELDS } from '../services/retention-rules-form.ts';
import { previewClientPrune, type PrunePreview } from '../services/retention.service.ts';
import { findUser } from '../services/users.service.ts';

/** At most this many rows of each table of a preview. */
export const PREVIEW_SHOWN = 200;

/** The simulator's table rows, for one client or summed over a user's clients (views/_prune-preview.eta). */
export interface PreviewView {
  heading: string;
  count: number;
  bytes: number;
  bytesComplete: boolean;
  shown: { clientName: string; path: string; validFrom: string; validTo: string | null; size: number }[];
  keptCount: number;
  kept: { clientName: string; path: string; validFrom: string; validTo: string | null; reasons: string[]; expiresAt: string | null }[];
  restorePoints: { clientName: string; runId: string; clientId: string; finishedAt: Date; keptBy: string[] }[];
  overridden: string[];
  held: string[];
}

export function emptyPreview(heading: string): PreviewView {
  return { heading, count: 0, bytes: 0, bytesComplete: true, shown: [], keptCount: 0, kept: [], restorePoints: [], overridden: [], held: [] };
}

/** Adds one client's simulator answer to `view`, at most `shownLimit` rows of each table. */
export function addToPreview(view: PreviewView, client: { id: string; name: string }, preview: PrunePreview, shownLimit: number): void {
  view.count += preview.total;
  view.keptCount += preview.keptTotal;
  for (const version of preview.versions) {
    view.bytes += version.size;
    if (view.shown.length < shownLimit) view.shown.push({ clientName: client.name, ...version });
  }
  view.bytesComplete = view.count <= shownLimit;
  for (const k of preview.kept) {
    if (view.kept.length < shownLimit) view.kept.push({ clientName: client.name, path: k.path, validFrom: k.validFrom, validTo: k.validTo, reasons: k.reasons, expiresAt: k.expiresAt });
  }
  for (const point of preview.restorePoints) view.restorePoints.push({ clientName: client.name, clientId: client.id, ...point });
}

/** "keep 3 versions and 30 days, /dumps 3.1 2.15, last 5 daily 7": the rules a preview is for. */
export function describeRules(policy: RetentionPolicy, rules: StoredRetentionRules): string {
  const parts = [`keep ${policy.versions} version${policy.versions === 1 ? '' : 's'}${policy.days ? ` and ${policy.days} days` : ''}`];
  for (const f of rules.folders) parts.push(`${f.folder} ${f.rules.map((r) => `${r.count}.${r.minAgeDays}`).join(' ')}`);
  const points = RESTORE_POINT_FIELDS.filter(({ kind }) => rules.restorePoints[kind] > 0).map(({ kind }) => `${kind} ${rules.restorePoints[kind]}`);
  if (points.length > 0) parts.push(`restore points: ${points.join(', ')}`);
  return parts.join('; ');
}

/** What `policy` and `rules` as this user's would prune now, client by client (clients with an override keep theirs). */
export async function previewUserRules(ctx: AppContext, userId: string, policy: RetentionPolicy, rules: StoredRetentionRules, now: Date): Promise<PreviewView> {
  const db = ctx.database.db;
  const owner = { retentionVersions: policy.versions, retentionDays: policy.days };
  const view = emptyPreview(describeRules(policy, rules));
  for (const client of await listClients(db, { ownerId: userId })) {
    if (client.retentionVersions !== null || client.retentionRules !== null) view.overridden.push(client.name);
    if (await isPruningHeld(db, client.id)) view.held.push(client.name);
    const clientRules = { base: effectiveRetentionPolicy(owner, client), ...effectiveStoredRules(rules, client.retentionRules) };
    addToPreview(view, client, await previewClientPrune(ctx, client.id, { now, rules: clientRules, limit: PREVIEW_SHOWN }), PREVIEW_SHOWN);
  }
  return view;
}

/** What the client's retention with this override (nulls: the owner's) would prune now. */
export async function previewClientRules(
  ctx: AppContext,
  client: { id: string; name: string; ownerId: string },
  override: { retentionVersions: number | null; retentionDays: number | null },
  rulesOverride: StoredRetentionRules | null,
  now: Date,
): Promise<PreviewView> {
  const owner = await findUser(ctx.database.db, client.ownerId);
  if (!owner) throw new BadRequestError('the client has no owner');
  const policy = effectiveRetentionPolicy(owner, override);
  const stored = effectiveStoredRules(owner.retentionRules, rulesOverride);
  const view = emptyPreview(describeRules(policy, stored));
  addToPreview(view, client, await previewClientPrune(ctx, client.id, { now, rules: { base: policy, ...stored }, limit: PREVIEW_SHOWN }), PREVIEW_SHOWN);
  return view;
}
