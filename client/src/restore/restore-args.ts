import { normaliseBackupPath } from '@cairn/shared';

export interface RestoreArgs {
  target: string;
  prefix: string;
  asOf: string | undefined;
  force: boolean;
  stateDir: string | undefined;
  server: string | undefined;
  token: string | undefined;
  concurrency: number;
  help: boolean;
}

export const RESTORE_USAGE = `Usage: cairn-agent restore --target DIR [options]

Restores backed-up files from the server into DIR (never outside it).

Options:
  --target DIR        where to restore (required); files keep their full path below it
  --prefix PATH       restore only this path and what is below it (default: everything)
  --as-of ISO-TIME    the tree as it was at that time, e.g. 2026-11-20T18:00:00Z (default: now)
  --force             overwrite files that already exist in the target
  --state DIR         agent state directory holding the server URL and token
                      (default: AGENT_STATE_DIR, else ./data/agent)
  --server URL        server address (with --token, instead of --state)
  --token TOKEN       this client's agent token
  --concurrency N     parallel downloads (default 4)
  -h, --help          show this help

Exit code: 0 when every file was restored and verified, 1 otherwise.`;

/** Parses restore's command line; every problem listed at once. */
export function parseRestoreArgs(argv: readonly string[]): { args?: RestoreArgs; problems: string[] } {
  const problems: string[] = [];
  const args: RestoreArgs = {
    target: '',
    prefix: '/',
    asOf: undefined,
    force: false,
    stateDir: undefined,
    server: undefined,
    token: undefined,
    concurrency: 4,
    help: false,
  };
  const valueOf = (name: string, index: number): string | undefined => {
    const value = argv[index + 1];
    if (value === undefined || value.startsWith('--')) {
      problems.push(`${name} needs a value`);
      return undefined;
    }
    return value;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const raw = argv[i] as string;
    const eq = raw.indexOf('=');
    const [name, inline] = raw.startsWith('--') && eq > 0 ? [raw.slice(0, eq), raw.slice(eq + 1)] : [raw, undefined];
    const take = (): string | undefined => {
      if (inline !== undefined) return inline;
      const value = valueOf(name, i);
      if (value !== undefined) i += 1;
      return value;
    };
    switch (name) {
      case '--target':
        args.target = take() ?? '';
        break;
      case '--prefix': {
        const value = take();
        if (value === undefined) break;
        const normalised = normaliseBackupPath(value);
        if (normalised === null) problems.push(`--prefix must be an absolute path, got ${JSON.stringify(value)}`);
        else args.prefix = normalised;
        break;
      }
      case '--as-of': {
        const value = take();
        if (value === undefined) break;
        const time = new Date(value);
        if (Number.isNaN(time.getTime())) problems.push(`--as-of must be an ISO time such as 2026-11-20T18:00:00Z, got ${JSON.stringify(value)}`);
        else args.asOf = time.toISOString();
        break;
      }
      case '--force':
        args.force = true;
        break;
      case '--state':
        args.stateDir = take();
        break;
      case '--server':
        args.server = take();
        break;
      case '--token':
        args.token = take();
        break;
      case '--concurrency': {
        const value = Number(take());
        if (!Number.isInteger(value) || value < 1 || value > 64) problems.push('--concurrency must be an integer from 1 to 64');
        else args.concurrency = value;
        break;
      }
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        problems.push(`unknown option ${JSON.stringify(raw)}`);
    }
  }
  if (args.help) return { args, problems: [] };
  if (args.target === '') problems.push('--target DIR is required');
  if ((args.server === undefined) !== (args.token === undefined)) problems.push('--server and --token go together');
  if (args.server !== undefined && args.stateDir !== undefined) problems.push('use either --state or --server/--token, not both');
  if (args.server !== undefined) {
    try {
      const url = new URL(args.server);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    } catch {
      problems.push(`--server must be an http(s) URL, got ${JSON.stringify(args.server)}`);
    }
  }
  return problems.length > 0 ? { problems } : { args, problems };
}
