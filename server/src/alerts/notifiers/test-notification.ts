import { randomUUID } from 'node:crypto';
import type { AppContext } from '../../app-context.ts';
import { recordAudit } from '../../services/audit-log.service.ts';
import type { Actor } from '../../services/users.service.ts';
import type { AlertEvent } from '../alert-event.ts';
import { type ChannelOutcome, createNotifier } from './create-notifier.ts';

/** A made-up alert that says what it is; it is never stored as an alert. */
export function testAlertEvent(actor: Actor, now: Date): AlertEvent {
  return {
    kind: 'opened',
    alert: {
      id: `test-${randomUUID()}`,
      type: 'failing',
      severity: 'info',
      clientId: null,
      clientName: null,
      ownerId: null,
      path: null,
      message: `Test notification sent by ${actor.name} from the dashboard; no backup is affected.`,
      observed: 'test',
      reference: 'test',
      openedAt: now.toISOString(),
      resolvedAt: null,
    },
  };
}

/**
 * Sends a test alert through every configured channel with one attempt each
 * (the person waits for the answer, so no backoff) and records who did it and
 * how each channel fared in the audit log.
 */
export async function sendTestNotification(ctx: AppContext, actor: Actor, now: Date): Promise<ChannelOutcome[]> {
  const notifier = createNotifier(ctx.config, ctx.log, { retry: { attempts: 1 } });
  try {
    const outcomes = await notifier.deliver([testAlertEvent(actor, now)], { test: true });
    await recordAudit(ctx.database.db, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'notification.test',
      targetType: 'server',
      targetId: null,
      details: { outcomes },
    });
    return outcomes;
  } finally {
    await notifier.close();
  }
}
