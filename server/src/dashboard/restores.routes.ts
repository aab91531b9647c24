import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { cronProblem, DEFAULT_TIME_ZONE, describeSchedule, isKnownTimeZone } from '@cairn/shared';
import { BadRequestError } from '../errors.ts';
import { listClients } from '../services/clients.service.ts';
import {
  cancelRestoreJob,
  createRestoreJob,
  createRestoreSchedule,
  DEFAULT_POST_COMMAND_TIMEOUT_SECONDS,
  deleteRestoreSchedule,
  getRestoreJob,
  listRestoreJobs,
  listRestoreSchedules,
  restoreRequestOf,
  runRestoreScheduleNow,
  scheduleOfRestore,
  type RestoreViewer,
} from '../services/restore-jobs.service.ts';
import { formatDurationField, parseDuration, type FieldErrors } from './client-config-form.ts';
import { actorOf, type DashboardDeps, field, queryParam, redirectAfterPost, renderPage, viewer } from './dashboard-context.ts';
import type { Viewer } from './dashboard.repository.ts';
import { parseAsOf } from './files.routes.ts';

/** Restore jobs shown on one page of the Restores tab, newest first. */
export const RESTORE_JOBS_PAGE = 25;

/** The restore form as typed (views/client-restores.eta), shown again with its errors. */
export interface RestoreFormValues {
  when: string;
  asOf: string;
  targetClientId: string;
  paths: string;
  targetDir: string;
  overwrite: string;
  postCommand: string;
  postCommandTimeout: string;
  scheduleKind: string;
  interval: string;
  cron: string;
  timeZone: string;
}

const FORM_FIELDS: readonly (keyof RestoreFormValues)[] = [
  'when',
  'asOf',
  'targetClientId',
  'paths',
  'targetDir',
  'overwrite',
  'postCommand',
  'postCommandTimeout',
  'scheduleKind',
  'interval',
  'cron',
  'timeZone',
];

function emptyForm(clientId: string, path: string, asOf: string): RestoreFormValues {
  return {
    when: 'now',
    asOf,
    targetClientId: clientId,
    paths: path || '/',
    targetDir: '/restore',
    overwrite: '',
    postCommand: '',
    postCommandTimeout: formatDurationField(DEFAULT_POST_COMMAND_TIMEOUT_SECONDS),
    scheduleKind: 'cron',
    interval: '1d',
    cron: '0 4 * * *',
    timeZone: DEFAULT_TIME_ZONE,
  };
}

const restoreViewer = (user: Viewer): RestoreViewer => ({ userId: user.id, isAdmin: user.isAdmin });

/** The form field that shows a service's 400 (its `field` names the service's input); paths when it names none. */
const FORM_FIELD_OF: Record<string, keyof RestoreFormValues> = {
  paths: 'paths',
  targetDir: 'targetDir',
  targetClientId: 'targetClientId',
  postCommand: 'postCommand',
  postCommandTimeoutSeconds: 'postCommandTimeout',
  asOf: 'asOf',
  cron: 'cron',
  timeZone: 'timeZone',
  intervalSeconds: 'interval',
};

function fieldError(error: BadRequestError): FieldErrors {
  return { [FORM_FIELD_OF[error.field ?? ''] ?? 'paths']: error.problem };
}

/**
 * Restores from the dashboard (issue 13): the client's Restores tab with the
 * restore form (now or on a schedule), its jobs and schedules; a job's page
 * with its progress and outcome; cancel, run-now and delete. A job restores
 * this client's backup onto this or another client of the same owner.
 */
export const restoresRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;
  const db = ctx.database.db;

  async function renderRestores(request: FastifyRequest, reply: FastifyReply, clientId: string, form: RestoreFormValues | null, errors: FieldErrors = {}, status = 200) {
    const user = viewer(request);
    const client = await repo.getClient(user, clientId);
    const beforeText = queryParam(request, 'before');
    const before = beforeText === '' ? undefined : new Date(beforeText);
    if (before !== undefined && Number.isNaN(before.getTime())) throw new BadRequestError('before: not a time');
    // A page may run past RESTORE_JOBS_PAGE to finish its last millisecond (listRestoreJobs); older jobs are looked for separately.
    const jobs = await listRestoreJobs(db, client.id, { limit: RESTORE_JOBS_PAGE, before });
    const oldest = jobs.at(-1);
    const hasOlder = oldest !== undefined && (await listRestoreJobs(db, client.id, { limit: 1, before: oldest.createdAt })).length > 0;
    const schedules = (await listRestoreSchedules(db, client.id)).map((s) => ({
      ...s,
      description: describeSchedule(scheduleOfRestore(s)),
    }));
    const targets = await listClients(db, { ownerId: client.ownerId });
    const { asOf: pathAsOf, explicit } = parseAsOf(queryParam(request, 'asOf'), deps.now());
    return renderPage(
      request,
      reply,
      deps,
      'client-restores',
      {
        title: `${client.name}: restores`,
        nav: 'clients',
        tab: 'restores',
        client,
        targets,
        jobs,
        olderBefore: hasOlder ? oldest.createdAt.toISOString() : null,
        paged: before !== undefined,
        schedules,
        form: form ?? emptyForm(client.id, queryParam(request, 'path'), explicit ? pathAsOf.toISOString().slice(0, 16) : ''),
        errors,
      },
      status,
    );
  }

  app.get<{ Params: { id: string } }>('/clients/:id/restores', async (request, reply) => renderRestores(request, reply, request.params.id, null));

  app.post<{ Params: { id: string } }>('/clients/:id/restores', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const values = Object.fromEntries(FORM_FIELDS.map((name) => [name, field(request.body, name)])) as unknown as RestoreFormValues;
    const errors: FieldErrors = {};
    const timeout = parseDuration(values.postCommandTimeout || '10m');
    if (timeout === null || timeout < 1 || timeout > 86_400) errors.postCommandTimeout = 'a duration from 1s to 1d, e.g. 10m';
    if (values.when !== 'now' && values.when !== 'schedule') errors.when = 'choose now or on a schedule';
    let asOf: Date | null = null;
    if (values.when === 'now' && values.asOf.trim() !== '') {
      try {
        asOf = parseAsOf(values.asOf, deps.now()).asOf;
      } catch (error) {
        if (!(error instanceof BadRequestError)) throw error;
        errors.asOf = 'a date and time, or empty for the latest backup';
      }
    }
    let intervalSeconds = 86_400;
    let cron: string | null = null;
    const timeZone = values.timeZone.trim() || DEFAULT_TIME_ZONE;
    if (values.when === 'schedule') {
      if (values.scheduleKind === 'cron') {
        const text = values.cron.trim().replace(/\s+/g, ' ');
        const problem = text === '' ? 'enter a cron expression, e.g. 0 4 * * * for 04:00 every day' : cronProblem(text);
        if (problem !== null) errors.cron = problem;
        else cron = text;
      } else if (values.scheduleKind === 'interval') {
        const seconds = parseDuration(values.interval);
        if (seconds === null || seconds < 60) errors.interval = 'a duration of at least 60s, e.g. 6h or 1d';
        else intervalSeconds = seconds;
      } else errors.scheduleKind = 'choose an interval or a cron expression';
      if (!isKnownTimeZone(timeZone)) errors.timeZone = `unknown time zone "${timeZone}" (use an IANA name such as Europe/Berlin)`;
    }
    if (Object.keys(errors).length > 0) return renderRestores(request, reply, client.id, values, errors, 400);
    const request_ = restoreRequestOf(client.id, {
      targetClientId: values.targetClientId,
      paths: values.paths.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== ''),
      targetDir: values.targetDir,
      overwrite: values.overwrite === 'on',
      postCommand: values.postCommand.trim() === '' ? null : values.postCommand,
      postCommandTimeoutSeconds: timeout!,
    });
    try {
      if (values.when === 'now') {
        const job = await createRestoreJob(ctx, restoreViewer(user), actorOf(user), { ...request_, asOf });
        return redirectAfterPost(reply, `/restore-jobs/${job.id}?notice=restore-queued`);
      }
      await createRestoreSchedule(ctx, restoreViewer(user), actorOf(user), { ...request_, cron, intervalSeconds, timeZone }, deps.now());
      return redirectAfterPost(reply, `/clients/${client.id}/restores?notice=restore-scheduled#schedules`);
    } catch (error) {
      if (error instanceof BadRequestError) return renderRestores(request, reply, client.id, values, fieldError(error), 400);
      throw error;
    }
  });

  app.get<{ Params: { jobId: string } }>('/restore-jobs/:jobId', async (request, reply) => {
    const user = viewer(request);
    const job = await getRestoreJob(db, restoreViewer(user), request.params.jobId);
    const client = await repo.getClient(user, job.sourceClientId);
    return renderPage(request, reply, deps, 'restore-job', { title: 'Restore job', nav: 'clients', tab: 'restores', client, job });
  });

  // Polled by the job page while the job is queued or running.
  app.get<{ Params: { jobId: string } }>('/restore-jobs/:jobId/status.json', async (request, reply) => {
    const job = await getRestoreJob(db, restoreViewer(viewer(request)), request.params.jobId);
    reply.header('cache-control', 'no-store');
    return { status: job.status, progress: job.progress, cancelRequested: job.cancelRequestedAt !== null };
  });

  app.post<{ Params: { jobId: string } }>('/restore-jobs/:jobId/cancel', async (request, reply) => {
    const user = viewer(request);
    const status = await cancelRestoreJob(ctx, restoreViewer(user), actorOf(user), request.params.jobId);
    return redirectAfterPost(reply, `/restore-jobs/${request.params.jobId}?notice=${status === 'cancelled' ? 'restore-cancelled' : 'restore-cancelling'}`);
  });

  app.post<{ Params: { scheduleId: string } }>('/restore-schedules/:scheduleId/run', async (request, reply) => {
    const user = viewer(request);
    const job = await runRestoreScheduleNow(ctx, restoreViewer(user), actorOf(user), request.params.scheduleId);
    return redirectAfterPost(reply, `/restore-jobs/${job.id}?notice=restore-queued`);
  });

  app.post<{ Params: { scheduleId: string } }>('/restore-schedules/:scheduleId/delete', async (request, reply) => {
    const user = viewer(request);
    const back = field(request.body, 'clientId');
    await deleteRestoreSchedule(ctx, restoreViewer(user), actorOf(user), request.params.scheduleId);
    return redirectAfterPost(reply, /^[0-9a-f-]{36}$/.test(back) ? `/clients/${back}/restores?notice=restore-schedule-deleted#schedules` : '/clients');
  });
};

