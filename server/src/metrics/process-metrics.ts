/**
 * Metrics that belong to this server process, not to the fleet: Node.js
 * process figures, HTTP request durations and periodic job durations. Each
 * replica reports its own; Prometheus sums them across instances. Figures
 * about backups come from the database at scrape time instead
 * (fleet-metrics.ts, decision 65).
 *
 * One registry per process, like the process it describes: several apps built
 * in one process (tests) share it.
 */
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export const processRegistry = new Registry();
collectDefaultMetrics({ register: processRegistry });

const httpRequestDuration = new Histogram({
  name: 'cairn_http_request_duration_seconds',
  help: 'HTTP requests served by this process, by method, route pattern and status code.',
  labelNames: ['method', 'route', 'status_code'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [processRegistry],
});

const jobDuration = new Histogram({
  name: 'cairn_job_duration_seconds',
  help: 'Periodic job runs in this process, by job and outcome (skipped: another replica held its lock).',
  labelNames: ['job', 'outcome'] as const,
  buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
  registers: [processRegistry],
});

/** The label of requests no route matched, so a scan of random URLs adds no series. */
export const UNMATCHED_ROUTE = 'unmatched';

/** `route` is the route's pattern (`/api/v1/runs/:runId/finish`), never the raw URL. */
export function observeHttpRequest(method: string, route: string, statusCode: number, seconds: number): void {
  httpRequestDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
}

export type JobOutcome = 'succeeded' | 'skipped' | 'failed';

function observeJobRun(job: string, outcome: JobOutcome, seconds: number): void {
  jobDuration.observe({ job, outcome }, seconds);
}

/**
 * Runs one periodic job and records its duration. A job whose result says
 * `ran: false` found its advisory lock held (another replica works) and counts
 * as skipped. The job's own result or error passes through unchanged.
 */
export async function timedJobRun<T>(job: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const result = await run();
    const skipped = typeof result === 'object' && result !== null && 'ran' in result && result.ran === false;
    observeJobRun(job, skipped ? 'skipped' : 'succeeded', seconds());
    return result;
  } catch (error) {
    observeJobRun(job, 'failed', seconds());
    throw error;
  }
}
