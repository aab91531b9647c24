import type { FastifyInstance, FastifyReply } from 'fastify';
import { describeRunTrigger, formatBytes, formatDuration } from '@cairn/shared';
import { SetupRefusedError, type AgentRuntime } from '../agent/agent-runtime.ts';
import { AGENT_VERSION } from '../agent/version.ts';
import { PermanentError, RetryableError, errorMessage } from '../net/http-errors.ts';
import { readSetupForm, validateSetupForm, type FieldErrors, type SetupFormValues } from './setup-form.ts';

const NOTICES: Record<string, string> = {
  started: 'Backup started.',
  running: 'A backup is already running.',
  saved: 'Setup saved. A backup has started.',
};

/** Helpers the templates use; all output still goes through Eta's escaping. */
const PHASES: Record<string, string> = {
  config: 'Contacting the server',
  'pre-commands': 'Running pre-backup commands',
  scanning: 'Looking for changes',
  hashing: 'Reading changed files',
  uploading: 'Uploading',
  committing: 'Saving to the server',
  finishing: 'Finishing',
};

const view = {
  phase: (name: string | undefined) => (name ? (PHASES[name] ?? name) : '-'),
  bytes: formatBytes,
  duration: formatDuration,
  trigger: describeRunTrigger,
  time(iso: string | null | undefined): string {
    if (!iso) return '-';
    return new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  },
};

/**
 * The agent's own page: the setup form before the agent is configured, the
 * status page after. Changing a configured agent asks for the server
 * credentials again (see validateSetupForm and the runtime's reconfigure).
 */
export function setupPageRoutes(app: FastifyInstance, runtime: AgentRuntime): void {
  const defaults = (): SetupFormValues => {
    const state = runtime.state;
    const d = runtime.config.setupDefaults;
    return {
      serverUrl: state?.serverUrl ?? d.serverUrl,
      enrollmentKey: '',
      username: state?.username ?? d.username,
      password: '',
      clientName: state?.clientName ?? runtime.config.clientName,
      monitoredPaths: (state?.monitoredPaths ?? d.monitoredPaths).join('\n'),
      currentUsername: '',
      currentPassword: '',
    };
  };

  const renderSetup = (reply: FastifyReply, values: SetupFormValues, errors: FieldErrors, formError: string | null, status = 200) =>
    reply.status(status).view('setup.eta', {
      title: runtime.state ? 'Change setup' : 'Set up backups',
      state: runtime.state,
      values,
      errors,
      formError,
      version: AGENT_VERSION,
      view,
    });

  app.get('/healthz', async () => ({ ok: true, configured: runtime.state !== null, running: runtime.status().running }));

  app.get('/', async (request, reply) => {
    if (runtime.state === null && !runtime.config.uiEnabled) {
      return reply.type('text/plain; charset=utf-8').send('This agent is registering with its server; refresh in a moment.');
    }
    if (runtime.state === null) return renderSetup(reply, defaults(), {}, null);
    const notice = NOTICES[String((request.query as Record<string, unknown>).notice ?? '')] ?? null;
    return reply.view('status.eta', {
      title: 'Backup status',
      state: runtime.state,
      status: runtime.status(),
      dashboardUrl: runtime.dashboardUrl(),
      schedule: runtime.scheduleDescription(),
      localPaths: runtime.config.uiEnabled ? runtime.state.monitoredPaths : runtime.config.monitoredPaths,
      notice,
      uiEditable: runtime.config.uiEnabled,
      version: AGENT_VERSION,
      view,
    });
  });

  // Env mode (CLIENT_UI_ENABLED=false): the environment is the only way to configure this agent.
  const refuseInEnvMode = (reply: FastifyReply) =>
    reply
      .status(409)
      .type('text/plain; charset=utf-8')
      .send('This agent is configured from its environment (CLIENT_UI_ENABLED=false): change its variables and restart it.');

  app.get('/setup', async (_request, reply) => {
    if (!runtime.config.uiEnabled) return refuseInEnvMode(reply);
    return renderSetup(reply, defaults(), {}, null);
  });

  app.post('/setup', async (request, reply) => {
    if (!runtime.config.uiEnabled) return refuseInEnvMode(reply);
    const values = readSetupForm(request.body);
    const current = runtime.state ?? undefined;
    const { setup, errors } = validateSetupForm(values, current);
    const keep = { ...values, password: '', currentPassword: '', enrollmentKey: '' };
    if (!setup) return renderSetup(reply, keep, errors, 'Please correct the highlighted fields.', 400);
    if (runtime.status().running && current) {
      return renderSetup(reply, keep, {}, 'A backup is running right now. Try again when it has finished.', 409);
    }
    try {
      await runtime.configure(setup);
    } catch (error) {
      const { message, status, fieldErrors } = describeSetupFailure(error, setup.serverUrl, setup.enrollmentKey !== undefined);
      request.log.warn({ err: errorMessage(error) }, 'setup failed');
      return renderSetup(reply, keep, fieldErrors, message, status);
    }
    return reply.redirect('/?notice=saved', 303);
  });

  app.post('/run', async (_request, reply) => {
    const outcome = runtime.requestRun('manual');
    if (outcome === 'not-configured') return reply.redirect('/', 303);
    return reply.redirect(`/?notice=${outcome === 'started' ? 'started' : 'running'}`, 303);
  });

  app.get('/status.json', async () => {
    const status = runtime.status();
    return {
      configured: status.configured,
      running: status.running,
      progress: status.progress,
      lastReport: status.lastReport,
      nextRunAt: status.nextRunAt,
      lastPingAt: status.lastPingAt,
      lastPingError: status.lastPingError,
      liveConnected: status.liveConnected,
      recentErrors: status.recentErrors,
      dashboardUrl: runtime.dashboardUrl(),
    };
  });
}

function describeSetupFailure(error: unknown, serverUrl: string, byKey: boolean): { message: string; status: number; fieldErrors: FieldErrors } {
  if (error instanceof SetupRefusedError) {
    return { message: error.message, status: 403, fieldErrors: error.field ? { [error.field]: error.message } : {} };
  }
  if (byKey && error instanceof PermanentError && [400, 401, 403, 409].includes(error.statusCode)) {
    // The server names the problem (revoked, expired, used, a name the key does not allow); the key itself is never echoed.
    const reason = error.message.replace(/^POST \/enroll: \d+ /, '');
    const onName = error.statusCode === 400 || error.statusCode === 409;
    return {
      message: `The server did not accept this enrollment key: ${reason}.`,
      status: error.statusCode === 409 ? 409 : error.statusCode === 400 ? 400 : 401,
      fieldErrors: onName ? { clientName: reason.replace(/^clientName:? /, '') } : { enrollmentKey: reason },
    };
  }
  if (error instanceof PermanentError && (error.statusCode === 401 || error.statusCode === 403)) {
    return {
      message: 'The server did not accept this user name and password.',
      status: 401,
      fieldErrors: { password: 'Wrong user name or password.' },
    };
  }
  if (error instanceof RetryableError) {
    return {
      message: `Cannot reach the server at ${serverUrl} (${error.message.replace(/^POST \/(register|enroll): /, '')}). Check the address and that the server is running.`,
      status: 502,
      fieldErrors: { serverUrl: 'The server did not answer.' },
    };
  }
  if (error instanceof PermanentError && error.statusCode === 404) {
    return {
      message: `${serverUrl} answered, but it does not look like a Cairn server.`,
      status: 502,
      fieldErrors: { serverUrl: 'Not a Cairn server.' },
    };
  }
  return { message: `Setup failed: ${errorMessage(error)}.`, status: 500, fieldErrors: {} };
}
