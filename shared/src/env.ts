/**
 * A small reader for environment-style configuration that collects every
 * problem instead of stopping at the first, so a person fixes them all at once.
 * Used by the server's and the agent's config modules, the only places that
 * read the environment.
 */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    // One problem reads as one line; several as a list.
    super(
      problems.length === 1
        ? `Invalid configuration: ${problems[0]}`
        : `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

export class EnvReader {
  readonly problems: string[] = [];

  private readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }

  #raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.#raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.#raw(name);
  }

  required(name: string, why: string): string {
    const value = this.#raw(name);
    if (value === undefined) this.problems.push(`${name} is required (${why})`);
    return value ?? '';
  }

  integer(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  optionalInteger(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const raw = this.#raw(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
      return undefined;
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const lowered = raw.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
    if (['0', 'false', 'no', 'off'].includes(lowered)) return false;
    this.problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  }

  url(name: string, fallback?: string): string | undefined {
    const raw = this.#raw(name) ?? fallback;
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol');
      return raw.replace(/\/+$/, '');
    } catch {
      this.problems.push(`${name} must be an http(s) URL, got "${raw}"`);
      return undefined;
    }
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
      return fallback;
    }
    return raw as T;
  }

  /** Throws a ConfigError listing every problem found so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

/**
 * The names of every variable `load` reads, found by running it against an
 * environment that records each lookup (values in `fixed` are answered, the
 * rest are unset). Validation failures are expected and ignored: only the
 * names matter. The deployment checks compare these with the compose files.
 */
export function variablesRead(load: (env: Env) => unknown, fixed: Env = {}): Set<string> {
  const names = new Set<string>();
  const recorder = new Proxy<Env>(
    {},
    {
      get: (_target, name) => {
        names.add(String(name));
        return fixed[String(name)];
      },
    },
  );
  try {
    load(recorder);
  } catch {
    // e.g. env mode without its required variables
  }
  return names;
}
