/**
 * /settings/alerts: the server-wide alert defaults (admins only). The same
 * form and parser as a client's alert settings; what is stored is only what
 * differs from the built-in defaults (alert-settings.ts).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  alertSettingsFormValues,
  alertSettingsInputFrom,
  type AlertSettingsInput,
  DETECTOR_LABELS,
  loadAlertDefaultsOverride,
  mergeAlertSettings,
  parseAlertSettingsForm,
  saveAlertDefaults,
  THRESHOLD_FIELDS,
} from '../alerts/alert-settings.ts';
import { DEFAULT_ALERT_SETTINGS } from '../alerts/detectors.ts';
import { actorOf, type DashboardDeps, field, redirectAfterPost, renderPage, requireAdmin } from './dashboard-context.ts';

export const alertDefaultsRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const db = deps.ctx.database.db;

  async function render(request: FastifyRequest, reply: FastifyReply, form: { values: AlertSettingsInput; errors: Record<string, string> } | null, status = 200) {
    const override = await loadAlertDefaultsOverride(db);
    return renderPage(
      request,
      reply,
      deps,
      'alert-defaults',
      {
        title: 'Alert defaults',
        nav: 'notifications',
        alertForm: form ?? { values: alertSettingsFormValues(mergeAlertSettings(DEFAULT_ALERT_SETTINGS, override)), errors: {} },
        builtIn: alertSettingsFormValues(DEFAULT_ALERT_SETTINGS),
        overridden: override !== null,
        detectorLabels: DETECTOR_LABELS,
        thresholdFields: THRESHOLD_FIELDS,
      },
      status,
    );
  }

  app.get('/settings/alerts', async (request, reply) => {
    requireAdmin(request);
    return render(request, reply, null);
  });

  app.post('/settings/alerts', async (request, reply) => {
    const admin = requireAdmin(request);
    const input = alertSettingsInputFrom((name) => field(request.body, name));
    const result = field(request.body, 'reset') === 'on' ? { ok: true as const, override: null } : parseAlertSettingsForm(input, DEFAULT_ALERT_SETTINGS);
    if (!result.ok) return render(request, reply, { values: input, errors: result.errors }, 400);
    await saveAlertDefaults(deps.ctx, result.override, actorOf(admin));
    return redirectAfterPost(reply, '/settings/alerts?notice=saved');
  });
};
