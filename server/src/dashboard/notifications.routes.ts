import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ChannelOutcome } from '../alerts/notifiers/create-notifier.ts';
import { sendTestNotification } from '../alerts/notifiers/test-notification.ts';
import { displayUrl } from '../alerts/notifiers/webhook-notifier.ts';
import { actorOf, type DashboardDeps, renderPage, requireAdmin } from './dashboard-context.ts';

export const notificationsRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { email, webhook } = deps.ctx.config.notifications;
  // What the page shows of the configuration: addresses and hosts, never a password, a secret or a URL query.
  const channels = {
    email: email && { from: email.from, to: email.to, server: `${email.smtp.host}:${email.smtp.port}`, tls: email.smtp.secure ? 'TLS' : 'STARTTLS when offered' },
    webhook: webhook && { url: displayUrl(webhook.url) },
  };

  function render(request: FastifyRequest, reply: FastifyReply, outcomes: ChannelOutcome[] | null, error: string | null, status = 200) {
    return renderPage(request, reply, deps, 'notifications', { title: 'Notifications', nav: 'notifications', channels, outcomes, error }, status);
  }

  app.get('/settings/notifications', async (request, reply) => {
    requireAdmin(request);
    return render(request, reply, null, null);
  });

  app.post('/settings/notifications/test', async (request, reply) => {
    const admin = requireAdmin(request);
    if (!email && !webhook) return render(request, reply, null, 'No notification channel is configured: set SMTP_URL or ALERT_WEBHOOK_URL.', 409);
    const outcomes = await sendTestNotification(deps.ctx, actorOf(admin), deps.now());
    return render(request, reply, outcomes, null, outcomes.every((o) => o.ok) ? 200 : 502);
  });
};
