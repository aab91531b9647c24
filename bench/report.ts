/**
 * Turns measurements into one table per scenario (plain text for the
 * terminal, markdown for bench/results and BASELINE.md) with the
 * ours/restic ratios judged against the targets of QUALITY.md.
 */
import { SCENARIOS, type Measurement, type Scenario, type ScenarioId, type SystemId } from './scenarios.ts';

export interface DatasetInfo {
  files: number;
  bytes: number;
}

export interface Verdict {
  scenario: ScenarioId;
  system: SystemId;
  what: 'time' | 'bytes' | 'stored' | 'agent memory' | 'server memory';
  ratio: number | null;
  target: number;
  met: boolean | null;
  /** The system cannot run the scenario yet (the reason). */
  notYet?: string;
  /** What the ratio counts, when that needs saying. */
  note?: string;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryBytes: number;
    /** The node running the bench itself. */
    node: string;
    /** The node that ran Cairn's server and agent, and whether without tsx (`--node`); absent in reports from before it was recorded. */
    cairnNode?: { version: string; stripsTypes: boolean };
    restic: string | null;
    loadAverageAtStart: number[];
  };
  datasets: Partial<Record<Scenario['dataset'], DatasetInfo>>;
  measurements: Measurement[];
  verdicts: Verdict[];
  notRun: { scenario: ScenarioId; reason: string }[];
  /** Each Cairn server's start-up: seconds to /readyz, and its idle PSS with its database (issue 10's targets). */
  startups?: { system: SystemId; dataset: string; seconds: number; idlePssBytes: number }[];
}

/** Issue 10's start-up targets: idle at most 150 MiB with its PostgreSQL, ready within 3 s. */
const STARTUP_TARGETS = { idlePssBytes: 150 * 2 ** 20, seconds: 3 };

function startupLines(report: BenchReport): string[] {
  return (report.startups ?? []).map(
    (s) =>
      `${s.system} (before the ${s.dataset} scenarios): ready in ${s.seconds.toFixed(2)} s (target <= ${STARTUP_TARGETS.seconds} s: ${s.seconds <= STARTUP_TARGETS.seconds ? 'met' : 'NOT MET'}); ` +
      `idle ${(s.idlePssBytes / 2 ** 20).toFixed(0)} MiB PSS with its database (target <= 150 MiB: ${s.idlePssBytes <= STARTUP_TARGETS.idlePssBytes ? 'met' : 'NOT MET'})`,
  );
}

const MB = 1e6;

function mb(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return 'n/a';
  if (bytes < 10 * MB) return `${(bytes / MB).toFixed(2)} MB`;
  return `${(bytes / MB).toFixed(1)} MB`;
}

function ratio(ours: number | null | undefined, theirs: number | null | undefined): number | null {
  if (ours === null || ours === undefined || theirs === null || theirs === undefined || theirs <= 0) return null;
  return ours / theirs;
}

function dumpScenario(scenario: Scenario): boolean {
  return scenario.dataset === 'dump' || scenario.dataset === 'pgbench';
}

function judge(scenario: Scenario, ours: Measurement, restic: Measurement | undefined): Verdict[] {
  const verdicts: Verdict[] = [];
  const add = (what: Verdict['what'], value: number | null, target: number | undefined) => {
    if (target === undefined) return;
    const usable = ours.ok && restic?.ok === true && value !== null;
    verdicts.push({
      scenario: scenario.id,
      system: ours.system,
      what,
      ratio: usable ? value : null,
      target,
      met: usable ? (value as number) <= target : null,
      ...(ours.notYet !== undefined ? { notYet: ours.notYet } : {}),
    });
  };
  add('time', ratio(ours.seconds, restic?.seconds), scenario.target.timeRatio);
  add('bytes', ratio(ours.bytesUploaded, restic?.bytesUploaded), scenario.target.bytesRatio);
  if (dumpScenario(scenario) && ours.metadataBaselineBytes !== undefined) {
    // S6/S7 judge what the dump's days cost: packs plus index rows, without the fixed size of an empty
    // database, which a server pays once whatever it stores (decision 173); the whole database is shown too.
    add('stored', ratio(ours.storedBytes - ours.metadataBaselineBytes, restic?.storedBytes), scenario.target.storedRatio);
    const whole = ratio(ours.storedBytes, restic?.storedBytes);
    const last = verdicts[verdicts.length - 1];
    if (last && whole !== null) last.note = `packs + index rows; ${whole.toFixed(2)}x with the fresh database's ${(ours.metadataBaselineBytes / 1e6).toFixed(1)} MB counted`;
  } else {
    add('stored', ratio(ours.storedBytes, restic?.storedBytes), scenario.target.storedRatio);
  }
  add('agent memory', ratio(ours.agentPeakRss, restic?.resticPeakRss), scenario.target.memoryRatio);
  add('server memory', ratio(ours.serverPeakPss, restic?.resticPeakRss), scenario.target.memoryRatio);
  return verdicts;
}

/** A system's measurement that counts for the verdict: its only one, or for S6/S7 the last day's. */
function finalMeasurement(measurements: readonly Measurement[], scenario: ScenarioId, system: SystemId): Measurement | undefined {
  let last: Measurement | undefined;
  for (const m of measurements) {
    if (m.scenario === scenario && m.system === system && (last === undefined || (m.day ?? 0) >= (last.day ?? 0))) last = m;
  }
  return last;
}

export function verdictsFor(measurements: readonly Measurement[]): Verdict[] {
  const verdicts: Verdict[] = [];
  for (const scenario of SCENARIOS) {
    const restic = finalMeasurement(measurements, scenario.id, 'restic');
    const systems = new Set(measurements.filter((m) => m.scenario === scenario.id && m.system !== 'restic').map((m) => m.system));
    for (const system of systems) verdicts.push(...judge(scenario, finalMeasurement(measurements, scenario.id, system) as Measurement, restic));
  }
  return verdicts;
}

const HEADER = ['system', 'time s', 'files/s', 'MB/s', 'uploaded', 'stored', 'agent RSS', 'server+db PSS', 'restic RSS', 'status'];

function row(m: Measurement): string[] {
  const system = m.day !== undefined ? `${m.system} day ${m.day}` : m.system;
  if (m.notYet !== undefined) return [system, '-', '-', '-', '-', '-', '', '', '', `not yet: ${m.notYet}`];
  const perSecond = (n: number) => (m.seconds > 0 ? n / m.seconds : 0);
  const stored = m.storedAllocatedBytes !== undefined && m.storedAllocatedBytes !== m.storedBytes ? `${mb(m.storedBytes)} (disk ${mb(m.storedAllocatedBytes)})` : mb(m.storedBytes);
  return [
    system,
    m.ok || m.seconds > 0 ? m.seconds.toFixed(2) + (m.processSeconds !== undefined ? ` (${m.processSeconds.toFixed(1)})` : '') : '-',
    m.ok ? Math.round(perSecond(m.filesScanned)).toLocaleString('en-US') : '-',
    m.ok ? (perSecond(m.bytesScanned) / MB).toFixed(1) : '-',
    mb(m.bytesUploaded),
    stored + (m.metadataBytes !== undefined ? ` (db ${mb(m.metadataBytes)})` : ''),
    m.system === 'restic' ? '' : mb(m.agentPeakRss),
    m.system === 'restic' ? '' : mb(m.serverPeakPss),
    m.system === 'restic' ? mb(m.resticPeakRss) : '',
    m.ok ? 'ok' : `FAILED${m.status ? ` (${m.status})` : ''}`,
  ];
}

function verdictText(v: Verdict): string {
  const value = v.ratio === null ? 'n/a' : `${v.ratio.toFixed(2)}x`;
  if (v.notYet !== undefined) return `${v.what} (target <= ${v.target}x): not yet`;
  const met = v.met === null ? 'not measured' : v.met ? 'met' : 'NOT MET';
  return `${v.what} ${value}${v.note ? ` (${v.note})` : ''} (target <= ${v.target}x): ${met}`;
}

interface ScenarioTable {
  scenario: Scenario;
  heading: string;
  rows: string[][];
  verdictLines: string[];
  errors: string[];
}

function scenarioTables(report: BenchReport): ScenarioTable[] {
  const tables: ScenarioTable[] = [];
  for (const scenario of SCENARIOS) {
    const notRun = report.notRun.find((n) => n.scenario === scenario.id);
    const measured = report.measurements.filter((m) => m.scenario === scenario.id);
    const dataset = report.datasets[scenario.dataset];
    const dump = scenario.dataset === 'dump' || scenario.dataset === 'pgbench';
    const size = dataset ? (dump ? ` (a dump of ${mb(dataset.bytes)} on day 0)` : ` (${dataset.files.toLocaleString('en-US')} files, ${mb(dataset.bytes)})`) : '';
    const heading = `${scenario.id} ${scenario.title}${size}; target: ${scenario.targetText}`;
    if (measured.length === 0) {
      tables.push({ scenario, heading, rows: [], verdictLines: [`not run${notRun ? ` (${notRun.reason})` : ''}`], errors: [] });
      continue;
    }
    const verdictLines: string[] = [];
    for (const system of ['cairn-disk', 'cairn-s3', 'cairn-disk-pg'] as const) {
      const mine = report.verdicts.filter((v) => v.scenario === scenario.id && v.system === system);
      if (mine.length > 0) verdictLines.push(`${system}/restic: ${mine.map(verdictText).join('; ')}`);
    }
    const errors = measured.filter((m) => !m.ok && m.notYet === undefined).map((m) => `${m.system}: ${m.error ?? 'failed'}`);
    tables.push({ scenario, heading, rows: measured.map(row), verdictLines, errors });
  }
  return tables;
}

/** The node that ran Cairn: `--node`'s, or (no cairnNode: older reports, or none given) the bench's own through tsx. */
export function cairnNodeText(machine: BenchReport['machine']): string {
  const runtime = machine.cairnNode ?? { version: machine.node, stripsTypes: false };
  return `Cairn ran on node ${runtime.version}, ${runtime.stripsTypes ? 'types stripped by node (no tsx, as the images)' : 'through tsx'}`;
}

export function renderText(report: BenchReport): string {
  const out: string[] = [`${cairnNodeText(report.machine)}.`];
  const startups = startupLines(report);
  if (startups.length > 0) out.push('', 'Server start-up', ...startups.map((l) => `  ${l}`));
  for (const table of scenarioTables(report)) {
    out.push('', table.heading);
    if (table.rows.length > 0) {
      const widths = HEADER.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? '').length)));
      const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
      out.push(`  ${line(HEADER)}`);
      for (const r of table.rows) out.push(`  ${line(r)}`);
    }
    for (const v of table.verdictLines) out.push(`  ${v}`);
    for (const e of table.errors) out.push(`  ! ${e.split('\n')[0]}`);
  }
  return out.join('\n');
}

export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const out = [
    `# Benchmark results${report.quick ? ' (quick)' : ''}`,
    '',
    `${report.startedAt} to ${report.finishedAt}; ${m.cpus} CPUs (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB; bench on node ${m.node}; ${cairnNodeText(m)}; ${m.restic ?? 'restic not installed'}; load average at start ${m.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}.`,
    '',
    'Time: seconds of the backup run (Cairn: the agent\'s run; in brackets the agent process from start to the end of its run, including node start-up and registration; restic: the whole `restic backup` process). MB = 10^6 bytes. Stored: apparent size (allocated disk in brackets) of the blob store or restic repository; db = the metadata database.',
  ];
  const startups = startupLines(report);
  if (startups.length > 0) out.push('', '## Server start-up', '', ...startups.map((l) => `- ${l}`));
  for (const table of scenarioTables(report)) {
    out.push('', `## ${table.heading}`, '');
    if (table.rows.length > 0) {
      out.push(`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`);
      for (const r of table.rows) out.push(`| ${r.join(' | ')} |`);
      out.push('');
    }
    for (const v of table.verdictLines) out.push(`- ${v}`);
    for (const e of table.errors) out.push(`- failure: ${e.split('\n')[0]}`);
  }
  return `${out.join('\n')}\n`;
}
