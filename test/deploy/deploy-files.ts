/**
 * The deployment files (compose files, .env.example, Dockerfiles) read into
 * plain data for the checks under test/deploy. Compose's variable
 * interpolation is implemented here for the forms the compose files use
 * (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
 * `${VAR?message}`, `$VAR`, `$$`), so the checks need no Docker at all.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser, type Copy, type Instruction, type JSONInstruction } from 'dockerfile-ast';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../helpers/processes.ts';

export const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.server.yml', 'docker-compose.client.yml'] as const;
export type ComposeFileName = (typeof COMPOSE_FILES)[number];

/** The two Cairn images; every other service in the compose files is a third-party image. */
export type Role = 'server' | 'agent';
export const DOCKERFILES: Record<Role, string> = { server: 'server/Dockerfile', agent: 'client/Dockerfile' };

export function readRepoFile(relative: string): string {
  return readFileSync(path.join(REPO_ROOT, relative), 'utf8');
}

// ---- compose interpolation ----------------------------------------------

export type InterpolationOperator = '' | '-' | ':-' | '?' | ':?';

export interface VariableReference {
  name: string;
  operator: InterpolationOperator;
  /** The default (`-`, `:-`) or the error message (`?`, `:?`). */
  argument: string;
}

const REFERENCE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

export function variableReferences(text: string): VariableReference[] {
  const references: VariableReference[] = [];
  for (const match of text.matchAll(REFERENCE)) {
    const name = match[1] ?? match[4];
    if (name === undefined) continue; // `$$`, an escaped dollar
    references.push({ name, operator: (match[2] ?? '') as InterpolationOperator, argument: match[3] ?? '' });
  }
  return references;
}

export class MissingVariableError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

/** Substitutes variables as compose does; a `?`/`:?` variable that is missing throws MissingVariableError. */
export function interpolate(text: string, variables: Record<string, string | undefined>): string {
  return text.replace(REFERENCE, (whole, braced: string | undefined, operator: string | undefined, argument: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare;
    if (name === undefined) return '$';
    const value = variables[name];
    switch (operator) {
      case ':-':
        return value === undefined || value === '' ? (argument ?? '') : value;
      case '-':
        return value ?? argument ?? '';
      case ':?':
        if (value === undefined || value === '') throw new MissingVariableError(name, argument ?? 'required');
        return value;
      case '?':
        if (value === undefined) throw new MissingVariableError(name, argument ?? 'required');
        return value;
      default:
        return value ?? '';
    }
  });
}

function mapStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, map));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mapStrings(item, map)]));
  }
  return value;
}

// ---- compose files --------------------------------------------------------

export interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  init?: boolean;
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  volumes?: (string | { source?: string; target: string })[];
  ports?: (string | number | { target: number; published?: string | number })[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  container_name?: string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** The compose file as written, before interpolation (what the JSON schema validates). */
export function readComposeRaw(name: ComposeFileName): unknown {
  return parseYaml(readRepoFile(name));
}

export function composeReferences(name: ComposeFileName): VariableReference[] {
  const references: VariableReference[] = [];
  mapStrings(readComposeRaw(name), (text) => {
    references.push(...variableReferences(text));
    return text;
  });
  return references;
}

/** The compose file with every variable substituted from `variables`. */
export function readCompose(name: ComposeFileName, variables: Record<string, string | undefined>): ComposeFile {
  return mapStrings(readComposeRaw(name), (text) => interpolate(text, variables)) as ComposeFile;
}

/** The raw (uninterpolated) compose file, typed. */
export function readComposeTemplate(name: ComposeFileName): ComposeFile {
  return readComposeRaw(name) as ComposeFile;
}

export function serviceEnvironment(service: ComposeService): Record<string, string> {
  const environment = service.environment ?? {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      environment.map((entry) => {
        const equals = entry.indexOf('=');
        return equals === -1 ? [entry, ''] : [entry.slice(0, equals), entry.slice(equals + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

/** Which Cairn image a service builds, if any. */
export function serviceRole(service: ComposeService): Role | undefined {
  const dockerfile = typeof service.build === 'object' ? service.build.dockerfile : undefined;
  return (Object.keys(DOCKERFILES) as Role[]).find((role) => DOCKERFILES[role] === dockerfile);
}

// ---- .env.example ---------------------------------------------------------

export interface EnvExample {
  text: string;
  /** Every `NAME=value` line, in order. */
  values: Map<string, string>;
}

export function readEnvExample(): EnvExample {
  const text = readRepoFile('.env.example');
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) values.set(match[1], match[2] ?? '');
  }
  return { text, values };
}

/** Variables some compose file requires with `${VAR:?message}`. */
export function requiredVariables(): Set<string> {
  return new Set(COMPOSE_FILES.flatMap((name) => composeReferences(name).filter((r) => r.operator === ':?' || r.operator === '?').map((r) => r.name)));
}

/**
 * .env.example with every required value filled in the way a person would:
 * URLs get a URL, BACKUP_SOURCE a folder, everything else a 40-character
 * secret (long enough for SECRET_KEY). `overrides` win.
 */
export function filledEnvExample(overrides: Record<string, string> = {}): Record<string, string> {
  const values = Object.fromEntries(readEnvExample().values);
  for (const name of requiredVariables()) {
    if (values[name]) continue;
    if (name.endsWith('_URL')) values[name] = 'https://cairn.example.test';
    else if (name === 'BACKUP_SOURCE') values[name] = '/srv';
    else values[name] = `sample${'0123456789'.repeat(4)}`.slice(0, 40);
  }
  return { ...values, ...overrides };
}

// ---- Dockerfiles ----------------------------------------------------------

export interface FinalStage {
  baseImage: string | null;
  /** ENV of the final stage (the environment the entry command sees). */
  env: Record<string, string>;
  workdir: string | undefined;
  user: string | undefined;
  /** ENTRYPOINT followed by CMD, both in exec (JSON) form. */
  command: string[];
  volumes: string[];
  healthcheck: string[] | undefined;
  /** COPY instructions, with the WORKDIR in effect for each (relative destinations resolve against it). */
  copies: { from: string | undefined; sources: string[]; destination: string; workdir: string }[];
  instructions: Instruction[];
}

function jsonArguments(instruction: Instruction | undefined): string[] {
  if (instruction === undefined) return [];
  const strings = (instruction as JSONInstruction).getJSONStrings();
  if (strings.length === 0) throw new Error(`line ${instruction.getRange().start.line + 1}: use the exec (JSON) form for ${instruction.getKeyword()}`);
  return strings.map((s) => s.getJSONValue());
}

/** The last stage of a Dockerfile: what the image runs. */
export function readFinalStage(relative: string): FinalStage {
  const dockerfile = DockerfileParser.parse(readRepoFile(relative));
  const froms = dockerfile.getFROMs();
  const lastFrom = froms.at(-1);
  if (!lastFrom) throw new Error(`${relative} has no FROM`);
  const startLine = lastFrom.getRange().start.line;
  const instructions = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= startLine);
  const byKeyword = (keyword: string) => instructions.filter((i) => i.getKeyword() === keyword);
  const env: Record<string, string> = {};
  for (const instruction of dockerfile.getENVs().filter((i) => i.getRange().start.line >= startLine)) {
    for (const property of instruction.getProperties()) env[property.getName()] = property.getUnescapedValue() ?? '';
  }
  const healthcheckText = byKeyword('HEALTHCHECK').at(-1)?.getArgumentsContent() ?? '';
  const healthcheckJson = /(?:^|\s)CMD\s+(\[.*\])\s*$/s.exec(healthcheckText)?.[1];
  return {
    baseImage: lastFrom.getImage(),
    env,
    workdir: byKeyword('WORKDIR').at(-1)?.getArgumentsContent() ?? undefined,
    user: byKeyword('USER').at(-1)?.getArgumentsContent() ?? undefined,
    command: [...jsonArguments(byKeyword('ENTRYPOINT').at(-1)), ...jsonArguments(byKeyword('CMD').at(-1))],
    volumes: byKeyword('VOLUME').flatMap((i) => {
      const strings = (i as JSONInstruction).getJSONStrings();
      return strings.length > 0 ? strings.map((s) => s.getJSONValue()) : i.getArguments().map((a) => a.getValue());
    }),
    healthcheck: healthcheckJson === undefined ? undefined : (JSON.parse(healthcheckJson) as string[]),
    copies: copiesOf(instructions),
    instructions,
  };
}

function copiesOf(instructions: Instruction[]): FinalStage['copies'] {
  const copies: FinalStage['copies'] = [];
  let workdir = '/';
  for (const instruction of instructions) {
    if (instruction.getKeyword() === 'WORKDIR') workdir = path.posix.resolve(workdir, instruction.getArgumentsContent() ?? '/');
    if (instruction.getKeyword() !== 'COPY') continue;
    const copy = instruction as Copy;
    const args = copy.getArguments().map((a) => a.getValue());
    const destination = args.pop();
    if (destination === undefined || args.length === 0) throw new Error(`line ${copy.getRange().start.line + 1}: COPY needs a source and a destination`);
    copies.push({ from: copy.getFromFlag()?.getValue() ?? undefined, sources: args, destination, workdir });
  }
  return copies;
}

/** The `npm ci ...` command a Dockerfile runs to install the image's dependencies. */
export function npmCiCommand(relative: string): string[] {
  const match = /npm ci( [^\n\\&;|]+)/.exec(readRepoFile(relative));
  if (!match?.[1]) throw new Error(`${relative} runs no npm ci`);
  return ['npm', 'ci', ...match[1].trim().split(/\s+/)];
}

/**
 * Whether .dockerignore leaves `relative` (a path inside the build context)
 * out: Docker's matching, for the pattern forms used (`*`, `**`, `?`, a
 * leading `!` re-includes), where a matched directory excludes its contents.
 */
export function dockerIgnored(relative: string, patterns = readRepoFile('.dockerignore').split('\n')): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const pattern = path.posix.normalize((negated ? line.slice(1) : line).replace(/^\/+/, ''));
    const source = pattern
      .split('/')
      .map((part) => (part === '**' ? '(?:.*)' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
      .join('/')
      .replace(/\(\?:\.\*\)\//g, '(?:.*/)?');
    if (new RegExp(`^${source}(?:/.*)?$`).test(relative)) ignored = !negated;
  }
  return ignored;
}
