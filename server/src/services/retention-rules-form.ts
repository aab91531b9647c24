/**
 * Folder rules and restore-point counts as people type them (the user's and
 * the client's dashboard forms, the admin API), parsed and checked here
 * once. Folder rules are one folder a line: an absolute path, then one or
 * more `count.min_age` rules (`/dumps 3.1 2.15`). Restore points are six
 * counts, empty meaning 0. Errors are keyed by field name, with a message
 * that says what is accepted.
 */
import type { FolderRule, FolderRules, RestorePointRules, StoredRetentionRules } from './retention-rules.ts';

export const RESTORE_POINT_FIELDS = [
  { field: 'keepLast', kind: 'last', label: 'Last runs' },
  { field: 'keepHourly', kind: 'hourly', label: 'Hourly' },
  { field: 'keepDaily', kind: 'daily', label: 'Daily' },
  { field: 'keepWeekly', kind: 'weekly', label: 'Weekly' },
  { field: 'keepMonthly', kind: 'monthly', label: 'Monthly' },
  { field: 'keepYearly', kind: 'yearly', label: 'Yearly' },
] as const satisfies readonly { field: string; kind: keyof RestorePointRules; label: string }[];

export type RestorePointField = (typeof RESTORE_POINT_FIELDS)[number]['field'];

export type RetentionRulesInput = { folderRules: string } & Record<RestorePointField, string>;

const MAX_FOLDERS = 100;
const MAX_RULES_PER_FOLDER = 10;
const MAX_COUNT = 10_000;
const MAX_MIN_AGE_DAYS = 36_500;
const RULE = /^(\d{1,5})\.(\d{1,5})$/;

/** Parses the folder-rules text; `error` says which line is wrong and why. */
export function parseFolderRules(text: string): { folders: FolderRules[]; error: null } | { folders: null; error: string } {
  const folders: FolderRules[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const where = `line ${index + 1}`;
    const [folder, ...ruleTexts] = line.split(/\s+/);
    if (!folder!.startsWith('/') || folder!.length > 4096 || folder!.includes('\0')) return { folders: null, error: `${where}: start with an absolute folder path, such as /dumps 3.1 2.15` };
    if (ruleTexts.length === 0) return { folders: null, error: `${where}: give ${folder} at least one count.min_age rule, such as 3.1` };
    if (ruleTexts.length > MAX_RULES_PER_FOLDER) return { folders: null, error: `${where}: at most ${MAX_RULES_PER_FOLDER} rules a folder` };
    const rules: FolderRule[] = [];
    for (const ruleText of ruleTexts) {
      const match = RULE.exec(ruleText);
      const count = match ? Number(match[1]) : NaN;
      const minAgeDays = match ? Number(match[2]) : NaN;
      if (!(count >= 1 && count <= MAX_COUNT && minAgeDays <= MAX_MIN_AGE_DAYS)) {
        return {
          folders: null,
          error: `${where}: "${ruleText}" is not count.min_age (a count from 1 to ${MAX_COUNT}, a dot, whole days from 0 to ${MAX_MIN_AGE_DAYS}, such as 3.1)`,
        };
      }
      rules.push({ count, minAgeDays });
    }
    const normalized = folder!.length > 1 ? folder!.replace(/\/+$/, '') : folder!;
    if (folders.some((f) => f.folder === normalized)) return { folders: null, error: `${where}: ${normalized} is listed twice; put all its rules on one line` };
    folders.push({ folder: normalized, rules });
  }
  if (folders.length > MAX_FOLDERS) return { folders: null, error: `at most ${MAX_FOLDERS} folders` };
  return { folders, error: null };
}

/** The folder rules as the form shows them: one folder a line. */
export function formatFolderRules(folders: readonly FolderRules[]): string {
  return folders.map((f) => [f.folder, ...f.rules.map((r) => `${r.count}.${r.minAgeDays}`)].join(' ')).join('\n');
}

/** Parses the whole form; on errors, `rules` is null and `errors` names each bad field. */
export function parseRetentionRules(input: RetentionRulesInput): { rules: StoredRetentionRules | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const parsed = parseFolderRules(input.folderRules);
  if (parsed.error !== null) errors.folderRules = parsed.error;
  const restorePoints: RestorePointRules = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
  for (const { field, kind } of RESTORE_POINT_FIELDS) {
    const text = input[field].trim();
    if (text === '') continue;
    const value = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    if (!(value >= 0 && value <= MAX_COUNT)) errors[field] = `empty or a whole number from 0 to ${MAX_COUNT}`;
    else restorePoints[kind] = value;
  }
  if (Object.keys(errors).length > 0 || parsed.folders === null) return { rules: null, errors };
  return { rules: { folders: parsed.folders, restorePoints }, errors };
}

/** The form's values for stored rules (a 0 count shows as empty). */
export function retentionRulesInput(rules: StoredRetentionRules): RetentionRulesInput {
  const input = { folderRules: formatFolderRules(rules.folders) } as RetentionRulesInput;
  for (const { field, kind } of RESTORE_POINT_FIELDS) input[field] = rules.restorePoints[kind] === 0 ? '' : String(rules.restorePoints[kind]);
  return input;
}

/** Reads the form's fields through `field` (the dashboard's body reader). */
export function retentionRulesInputFrom(field: (name: string) => string): RetentionRulesInput {
  const input = { folderRules: field('folderRules') } as RetentionRulesInput;
  for (const { field: name } of RESTORE_POINT_FIELDS) input[name] = field(name);
  return input;
}
