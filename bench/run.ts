/**
 * `npm run bench [-- options]`: Cairn side by side with restic on generated
 * datasets, scenarios S1-S7 of shared/design/QUALITY.md. See
 * docs/benchmarks.md.
 *
 *   --quick              small datasets (2,000 files; 20 MiB; a 64 MiB dump; pgbench scale 2), for CI and development
 *   --only S1,S4         run only these scenarios (S2/S3 imply S1, S5 implies S4)
 *   --systems a,b        any of cairn-disk, cairn-s3, cairn-disk-pg, restic (default: all but cairn-disk-pg)
 *   --postgres URL       also run cairn-disk-pg: metadata in PostgreSQL (URL of a database where the bench may create and drop its own)
 *   --pgbench-url URL    the PostgreSQL server S7 creates its pgbench database on (default postgres://postgres@127.0.0.1:5432/postgres)
 *   --work-dir DIR       where datasets and stores go (default: a fresh temp dir)
 *   --keep               keep the work dir (the datasets are then reused by the next run with --work-dir)
 *   --profile            write V8 CPU profiles of agent and server under bench/results/profiles
 *   --files N            the small-files dataset with N files instead (for profiling at an intermediate size)
 *   --logs               save the agent's and server's logs of each run under bench/results/logs
 *   --node PATH          run the server and agent under this node binary (also CAIRN_BENCH_NODE); one that strips
 *                        types itself (22.18 and later) runs them without tsx, as the images do
 */
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../test/helpers/processes.ts';
import { CairnSystem, agentUnavailable, benchNode } from './cairn-runner.ts';
import {
  filesToChange,
  mixedSpec,
  rewriteFiles,
  smallFilesSpec,
  specFingerprint,
  writeDataset,
  type DatasetSpec,
} from './dataset-generator.ts';
import { PgbenchDatabase, SqlDump, pgbenchUnavailable } from './dump-datasets.ts';
import { cairnNodeText, renderMarkdown, renderText, verdictsFor, type BenchReport } from './report.ts';
import { ResticRepository, resticVersion } from './restic-runner.ts';
import { DUMP_DAYS, type Measurement, type ScenarioId, type SystemId } from './scenarios.ts';

const SEED = 'cairn-bench-v1';
const KiB = 1024;
const MiB = 1024 * KiB;
const CHANGED_SHARE = 0.01;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    systems: { type: 'string' },
    'work-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    logs: { type: 'boolean', default: false },
    files: { type: 'string' },
    postgres: { type: 'string' },
    'pgbench-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    node: { type: 'string' },
  },
});

const cairnNode = benchNode(args.node);

const quick = args.quick === true;
const resultsDir = path.join(REPO_ROOT, 'bench/results');
const benchStart = performance.now();

function progress(message: string): void {
  const seconds = ((performance.now() - benchStart) / 1000).toFixed(1).padStart(6);
  console.log(`[bench ${seconds}s] ${message}`);
}

function selectedScenarios(): Set<ScenarioId> {
  const all: ScenarioId[] = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7'];
  if (args.only === undefined) return new Set(all);
  const picked = new Set(args.only.split(',').map((s) => s.trim().toUpperCase()) as ScenarioId[]);
  if (picked.has('S2') || picked.has('S3')) picked.add('S1');
  if (picked.has('S5')) picked.add('S4');
  return new Set(all.filter((s) => picked.has(s)));
}

function selectedSystems(): Set<SystemId> {
  const all: SystemId[] = ['cairn-disk', 'cairn-s3', 'restic', ...(args.postgres ? (['cairn-disk-pg'] as const) : [])];
  if (args.systems === undefined) return new Set(all);
  return new Set(args.systems.split(',').map((s) => s.trim()) as SystemId[]);
}

const smallSpec = (): DatasetSpec =>
  smallFilesSpec(SEED, {
    files: args.files !== undefined ? Number(args.files) : quick ? 2_000 : 100_000,
    minBytes: 512,
    maxBytes: 8 * KiB,
    textShare: 0.6,
    duplicateShare: 0.02,
    filesPerDirectory: 50,
  });

const mixedSpecFor = (): DatasetSpec =>
  mixedSpec(SEED, {
    totalBytes: quick ? 20 * MiB : 1024 * MiB,
    largeFiles: quick ? 2 : 4,
    largeShare: 0.5,
    mediumShare: 0.375,
    mediumMinBytes: quick ? 128 * KiB : 256 * KiB,
    mediumMaxBytes: quick ? 1 * MiB : 4 * MiB,
    sourceMinBytes: 1 * KiB,
    sourceMaxBytes: 24 * KiB,
  });

/** Writes the dataset unless a kept copy with the same fingerprint is there (then undoes S3's edits). */
async function prepareDataset(root: string, spec: DatasetSpec): Promise<void> {
  const marker = path.join(root, '..', `${path.basename(root)}.fingerprint`);
  const fingerprint = specFingerprint(spec);
  const existing = await readFile(marker, 'utf8').catch(() => null);
  if (existing === fingerprint) {
    rewriteFiles(root, spec, filesToChange(spec, CHANGED_SHARE), 0);
    progress(`dataset ${spec.name}: reusing ${root}`);
    return;
  }
  await rm(root, { recursive: true, force: true });
  await rm(marker, { force: true });
  progress(`dataset ${spec.name}: writing ${spec.files.length.toLocaleString('en-US')} files, ${(spec.totalBytes / MiB).toFixed(0)} MiB`);
  let shown = 0;
  writeDataset(root, spec, (done, total) => {
    const tenth = Math.floor((done / total) * 10);
    if (tenth > shown) {
      shown = tenth;
      progress(`dataset ${spec.name}: ${tenth * 10}%`);
    }
  });
  await writeFile(marker, fingerprint);
}

interface Systems {
  cairn: CairnSystem[];
  restic: ResticRepository | null;
  /** Scratch PostgreSQL databases to drop at the end. */
  databases: string[];
}

/** Runs one statement against the --postgres server (create/drop of the bench's scratch database). */
async function postgresAdmin(statement: string): Promise<void> {
  const postgres = (await import('postgres')).default;
  const sql = postgres(args.postgres as string, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end();
  }
}

async function startSystems(workDir: string, wanted: Set<SystemId>, resticOk: boolean): Promise<Systems> {
  const systems: Systems = { cairn: [], restic: null, databases: [] };
  const runTimeoutMs = quick ? 120_000 : 60 * 60_000;
  const profileDir = args.profile ? path.join(resultsDir, 'profiles') : undefined;
  const logDir = args.logs ? path.join(resultsDir, 'logs') : undefined;
  const variants: { id: SystemId; store: 'disk' | 's3'; postgres: boolean }[] = [
    { id: 'cairn-disk', store: 'disk', postgres: false },
    { id: 'cairn-s3', store: 's3', postgres: false },
    { id: 'cairn-disk-pg', store: 'disk', postgres: true },
  ];
  for (const variant of variants) {
    if (!wanted.has(variant.id) || (variant.postgres && !args.postgres)) continue;
    let databaseUrl: string | undefined;
    if (variant.postgres) {
      const name = `cairn_bench_${process.pid}_${systems.databases.length}_${Date.now()}`;
      await postgresAdmin(`create database ${name}`);
      systems.databases.push(name);
      const url = new URL(args.postgres as string);
      url.pathname = `/${name}`;
      databaseUrl = url.toString();
    }
    const system = new CairnSystem({
      store: variant.store,
      workDir,
      runTimeoutMs,
      ...(databaseUrl ? { databaseUrl } : {}),
      ...(profileDir ? { profileDir } : {}),
      ...(logDir ? { logDir } : {}),
      node: cairnNode,
    });
    progress(`starting ${system.id} server`);
    await system.start();
    systems.cairn.push(system);
  }
  if (wanted.has('restic') && resticOk) {
    systems.restic = new ResticRepository(workDir);
    await systems.restic.init();
  }
  return systems;
}

async function stopSystems(systems: Systems): Promise<void> {
  for (const system of systems.cairn) await system.stop();
  await systems.restic?.remove();
  for (const name of systems.databases) await postgresAdmin(`drop database if exists ${name} with (force)`);
}

function describe(m: Measurement): string {
  if (m.notYet !== undefined) return `${m.scenario} ${m.system}: not yet (${m.notYet})`;
  if (!m.ok) return `${m.scenario} ${m.system}: FAILED: ${(m.error ?? '').split('\n')[0]}`;
  const day = m.day !== undefined ? ` day ${m.day}` : '';
  return `${m.scenario} ${m.system}${day}: ${m.seconds.toFixed(2)} s, ${m.filesScanned} files, ${(m.bytesUploaded / 1e6).toFixed(1)} MB uploaded, ${(m.storedBytes / 1e6).toFixed(1)} MB stored`;
}

/**
 * S6/S7: day 0 and DUMP_DAYS more, each `prepareDay(day)` (which rewrites
 * the dump in `source`) followed by a backup into one restic repository of
 * the scenario's own and by one run of Cairn's agent against each Cairn
 * system (started for the scenario, so its store holds this dump's days
 * only); the stored size after each day is in each measurement.
 */
async function runDumpScenario(
  scenario: ScenarioId,
  source: string,
  prepareDay: (day: number) => string,
  workDir: string,
  wanted: Set<SystemId>,
  resticOk: boolean,
  measurements: Measurement[],
  onSystems: (systems: Systems | null) => void,
): Promise<void> {
  const restic = wanted.has('restic') && resticOk ? new ResticRepository(workDir, `restic-${scenario}`) : null;
  const systems = await startSystems(workDir, new Set([...wanted].filter((s) => s !== 'restic')), false);
  onSystems(systems);
  try {
    await restic?.init();
    for (let day = 0; day <= DUMP_DAYS; day += 1) {
      progress(`${scenario} day ${day}: ${prepareDay(day)}`);
      if (restic) {
        const m = { ...(await restic.backup(scenario, source)), day };
        measurements.push(m);
        progress(describe(m));
      }
      for (const system of systems.cairn) {
        const m = { ...(await system.backup(scenario, source)), day };
        measurements.push(m);
        progress(describe(m));
      }
    }
  } finally {
    await restic?.remove();
    await stopSystems(systems);
    onSystems(null);
  }
}

/** Runs one scenario on every system, restic first. */
async function runScenario(scenario: ScenarioId, source: string, systems: Systems, measurements: Measurement[]): Promise<void> {
  if (systems.restic) {
    progress(`${scenario} restic: running`);
    const m = await systems.restic.backup(scenario, source);
    measurements.push(m);
    progress(describe(m));
  }
  for (const system of systems.cairn) {
    progress(`${scenario} ${system.id}: running`);
    const m = await system.backup(scenario, source);
    measurements.push(m);
    progress(describe(m));
  }
}

async function main(): Promise<number> {
  const scenarios = selectedScenarios();
  const wanted = selectedSystems();
  const restic = resticVersion();
  const agentProblem = agentUnavailable();
  const workDir = args['work-dir'] ? path.resolve(args['work-dir']) : await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-'));
  await mkdir(workDir, { recursive: true });
  await mkdir(resultsDir, { recursive: true });
  const space = await statfs(workDir);
  progress(`${quick ? 'quick' : 'full'} run in ${workDir} (${((space.bavail * space.bsize) / 2 ** 30).toFixed(0)} GiB free); load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (restic === null) progress('restic is not installed: Cairn runs alone, ratios are not computed (apt-get install restic)');
  if (agentProblem !== null && [...wanted].some((s) => s !== 'restic')) progress(`Cairn cannot run: ${agentProblem}`);

  const report: BenchReport = {
    startedAt: new Date().toISOString(),
    finishedAt: '',
    quick,
    machine: {
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryBytes: os.totalmem(),
      node: process.version,
      cairnNode: { version: cairnNode.version, stripsTypes: cairnNode.stripsTypes },
      restic,
      loadAverageAtStart: os.loadavg(),
    },
    datasets: {},
    measurements: [],
    verdicts: [],
    notRun: [],
    startups: [],
  };
  progress(cairnNodeText(report.machine));
  const recordStartups = (systems: Systems, dataset: string) => {
    for (const system of systems.cairn) {
      if (system.startup === null) continue;
      report.startups?.push({ system: system.id, dataset, ...system.startup });
      progress(`${system.id}: ready in ${system.startup.seconds.toFixed(2)} s, idle ${(system.startup.idlePssBytes / 2 ** 20).toFixed(0)} MiB PSS with its database`);
    }
  };

  const cairnWanted = new Set([...wanted].filter((s) => s === 'restic' || agentProblem === null));
  let failed = agentProblem !== null && cairnWanted.size < wanted.size;
  let active: Systems | null = null;
  let pgbenchDatabase: PgbenchDatabase | null = null;
  const onSignal = () => {
    progress('interrupted: stopping processes and removing temporary data');
    void (async () => {
      if (active) await stopSystems(active).catch(() => undefined);
      pgbenchDatabase?.drop();
      if (!args.keep) await rm(workDir, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    if (scenarios.has('S1')) {
      const spec = smallSpec();
      report.datasets.small = { files: spec.files.length, bytes: spec.totalBytes };
      const root = path.join(workDir, 'small');
      await prepareDataset(root, spec);
      active = await startSystems(workDir, cairnWanted, restic !== null);
      recordStartups(active, 'small-files');
      await runScenario('S1', root, active, report.measurements);
      if (scenarios.has('S2')) await runScenario('S2', root, active, report.measurements);
      if (scenarios.has('S3')) {
        const changed = filesToChange(spec, CHANGED_SHARE);
        const bytes = rewriteFiles(root, spec, changed, 1);
        progress(`S3: changed ${changed.length} files (${(bytes / 1e6).toFixed(2)} MB)`);
        await runScenario('S3', root, active, report.measurements);
        rewriteFiles(root, spec, changed, 0);
      }
      await stopSystems(active);
      active = null;
    }
    if (scenarios.has('S4')) {
      const spec = mixedSpecFor();
      report.datasets.mixed = { files: spec.files.length, bytes: spec.totalBytes };
      const root = path.join(workDir, 'mixed');
      await prepareDataset(root, spec);
      active = await startSystems(workDir, cairnWanted, restic !== null);
      recordStartups(active, 'mixed');
      await runScenario('S4', root, active, report.measurements);
      if (scenarios.has('S5')) await runScenario('S5', root, active, report.measurements);
      await stopSystems(active);
      active = null;
    }
    if (scenarios.has('S6')) {
      const dir = path.join(workDir, 'dump');
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, 'shop.sql');
      const dump = new SqlDump(SEED, quick ? 64 * MiB : 2048 * MiB);
      await runDumpScenario(
        'S6',
        dir,
        (day) => {
          const edits = day === 0 ? null : dump.nextDay(CHANGED_SHARE);
          const bytes = dump.write(file);
          if (day === 0) report.datasets.dump = { files: 1, bytes };
          return `${(bytes / 1e6).toFixed(1)} MB${edits ? `; ${edits.updated} rows edited (${edits.sameLength} same length), ${edits.inserted} inserted, ${edits.deleted} deleted` : ''}`;
        },
        workDir,
        cairnWanted,
        restic !== null,
        report.measurements,
        (systems) => (active = systems),
      );
      await rm(dir, { recursive: true, force: true });
    }
    if (scenarios.has('S7')) {
      const problem = pgbenchUnavailable(args['pgbench-url'] as string);
      if (problem !== null) {
        report.notRun.push({ scenario: 'S7', reason: problem });
        progress(`S7 skipped: ${problem}`);
      } else {
        const dir = path.join(workDir, 'pgbench');
        await mkdir(dir, { recursive: true });
        const file = path.join(dir, 'pgbench.sql');
        const database = new PgbenchDatabase(args['pgbench-url'] as string, SEED);
        pgbenchDatabase = database;
        const scale = quick ? 2 : 20;
        const transactions = quick ? 200 : 2000;
        try {
          database.init(scale);
          await runDumpScenario(
            'S7',
            dir,
            (day) => {
              if (day > 0) database.work(transactions, day);
              database.dump(file);
              const bytes = statSync(file).size;
              if (day === 0) report.datasets.pgbench = { files: 1, bytes };
              return day === 0 ? `pgbench -i -s ${scale}, pg_dump ${(bytes / 1e6).toFixed(1)} MB` : `pgbench -t ${transactions}, pg_dump ${(bytes / 1e6).toFixed(1)} MB`;
            },
            workDir,
            cairnWanted,
            restic !== null,
            report.measurements,
            (systems) => (active = systems),
          );
        } finally {
          database.drop();
          pgbenchDatabase = null;
        }
        await rm(dir, { recursive: true, force: true });
      }
    }
  } catch (error) {
    failed = true;
    progress(`bench aborted: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (active) await stopSystems(active).catch(() => undefined);
  } finally {
    if (!args.keep) await rm(workDir, { recursive: true, force: true });
  }

  report.finishedAt = new Date().toISOString();
  report.verdicts = verdictsFor(report.measurements);
  if (report.measurements.some((m) => !m.ok && m.notYet === undefined)) failed = true;
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const base = path.join(resultsDir, `${quick ? 'quick-' : ''}${stamp}`);
  await writeFile(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(`${base}.md`, renderMarkdown(report));
  console.log(renderText(report));
  console.log('');
  progress(`results: ${path.relative(process.cwd(), base)}.{json,md}${args.keep ? `; kept ${workDir}` : ''}`);
  if (failed) progress('FAILED: a scenario did not run to a successful end');
  return failed ? 1 : 0;
}

process.exitCode = await main();
