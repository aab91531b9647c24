import { runAlertEngine } from '../alerts/alert-engine.ts';
import type { AppContext } from '../app-context.ts';
import { timedJobRun } from '../metrics/process-metrics.ts';
import { collectGarbage } from '../services/garbage-collector.ts';
import { sweepRetention } from '../services/retention.service.ts';
import { sweepRestoreSchedules } from '../services/restore-jobs.service.ts';
import { migrateV1Objects } from '../storage/v1-migration-job.ts';
import { runMetadataExport } from '../storage/metadata-export.ts';
import { runReplication } from '../storage/replication-job.ts';
import { runVerify } from '../storage/verify-job.ts';

export interface PeriodicJobs {
  /** Stops scheduling and waits for a job that is running to finish. */
  stop(): Promise<void>;
}

/** How often due restore schedules are looked for: a scheduled restore starts within this of its time. */
export const RESTORE_SCHEDULE_SWEEP_SECONDS = 30;

interface JobSpec {
  name: string;
  intervalSeconds: number;
  run: () => Promise<unknown>;
}

/**
 * Starts the periodic jobs: the retention sweep, GC, verify, the alert engine, the
 * restore-schedule sweep and, with a replica store, replication and the
 * metadata export. Each run takes its
 * advisory try-lock inside the service, so with N replicas one of them works
 * and the others skip. A job is scheduled again only after it finished, so a
 * slow run never overlaps the next one in this process.
 */
export function startPeriodicJobs(ctx: AppContext): PeriodicJobs {
  const specs: JobSpec[] = [
    { name: 'retention-sweep', intervalSeconds: ctx.config.retention.sweepIntervalSeconds, run: () => sweepRetention(ctx) },
    { name: 'gc', intervalSeconds: ctx.config.gc.intervalSeconds, run: () => collectGarbage(ctx) },
    // Until no v1 object is left; then one indexed look per interval (decision 133).
    { name: 'v1-to-packs', intervalSeconds: ctx.config.gc.intervalSeconds, run: () => migrateV1Objects(ctx) },
    { name: 'alerts', intervalSeconds: ctx.config.alerts.intervalSeconds, run: () => runAlertEngine(ctx) },
    // Row locks (FOR UPDATE SKIP LOCKED), not an advisory lock: replicas sweeping at once queue each time once (decision 146).
    { name: 'restore-schedules', intervalSeconds: RESTORE_SCHEDULE_SWEEP_SECONDS, run: () => sweepRestoreSchedules(ctx) },
    ...(ctx.config.verify.intervalSeconds > 0
      ? [{ name: 'verify', intervalSeconds: ctx.config.verify.intervalSeconds, run: () => runVerify(ctx, 'schedule') }]
      : []),
    ...(ctx.config.replica && ctx.replica
      ? [
          { name: 'replication', intervalSeconds: ctx.config.replica.intervalSeconds, run: () => runReplication(ctx) },
          { name: 'metadata-export', intervalSeconds: ctx.config.replica.exportIntervalSeconds, run: () => runMetadataExport(ctx) },
        ]
      : []),
  ];
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<void>>();

  const schedule = (spec: JobSpec) => {
    if (stopped) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      const execution = timedJobRun(spec.name, spec.run)
        .then(
          (result) => ctx.log.debug({ job: spec.name, result }, 'periodic job finished'),
          (error: unknown) => ctx.log.error({ err: error, job: spec.name }, 'periodic job failed; it runs again at its next interval'),
        )
        .finally(() => {
          running.delete(execution);
          schedule(spec);
        });
      running.add(execution);
    }, spec.intervalSeconds * 1000);
    timer.unref();
    timers.add(timer);
  };
  for (const spec of specs) schedule(spec);

  return {
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all([...running]);
    },
  };
}
