/**
 * Where `cairn login` keeps the server URL and the personal access token:
 * `$CAIRN_CLI_CONFIG`, else `$XDG_CONFIG_HOME/cairn/cli.json`, else
 * `~/.config/cairn/cli.json`. The file is written with mode 0600 (its folder
 * 0700), replaced atomically, since the token acts as the user.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface CliConfig {
  server: string;
  token: string;
  username: string;
}

export function cliConfigPath(env: NodeJS.ProcessEnv): string {
  if (env.CAIRN_CLI_CONFIG) return env.CAIRN_CLI_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'cairn', 'cli.json');
}

export async function readCliConfig(file: string): Promise<CliConfig | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const value = JSON.parse(text) as Partial<CliConfig>;
  if (typeof value.server !== 'string' || typeof value.token !== 'string') throw new Error(`${file}: not a cairn CLI configuration (run cairn login again)`);
  return { server: value.server, token: value.token, username: value.username ?? '' };
}

export async function writeCliConfig(file: string, config: CliConfig): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  // writeFile's mode only applies to a new file, and the umask may narrow it: set it exactly.
  await chmod(temp, 0o600);
  await rename(temp, file);
}

/** Deletes the saved configuration (`cairn logout`); an absent file is fine. */
export async function removeCliConfig(file: string): Promise<void> {
  await rm(file, { force: true });
}
