/**
 * The database-dump datasets of S6 and S7.
 *
 * S6 (`SqlDump`): a generated plain-text dump in pg_dump's layout (header,
 * CREATE TABLE, one `COPY ... FROM stdin;` block of tab-separated rows per
 * table, `\.`, then the constraints) of four tables with different row
 * shapes. Every row's text is a function of (seed, table, id, edit): the
 * same seed gives the same bytes on every machine. A "day" edits 1% of the
 * live rows, scattered over all tables (half keep their length: only a
 * fixed-width `updated_at` changes; half change length: new amounts,
 * statuses, text), deletes a few and appends a few new rows at the end of
 * their tables, as a daily dump of a busy database would show.
 *
 * S7 (`PgbenchDatabase`): a real database, `pgbench -i -s N` in a scratch
 * database of a local PostgreSQL server, dumped with `pg_dump`, then
 * `pgbench -t T` between dumps.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Prng } from './dataset-generator.ts';

/** 32-bit integer mixing (murmur3's finaliser over three words): cheap per-row randomness, identical on every platform. */
function mix(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ c;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A tiny xorshift32 stream for the fields of one row. */
class RowRandom {
  #state: number;
  constructor(seed: number) {
    this.#state = seed === 0 ? 0x6d2b79f5 : seed;
  }
  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x;
    return x >>> 0;
  }
  below(n: number): number {
    return this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
}

const FIRST = ['Anna', 'Ben', 'Chloé', 'David', 'Emma', 'Felix', 'Greta', 'Hugo', 'Ines', 'Jonas', 'Klara', 'Luca', 'Mia', 'Noah', 'Olga', 'Paul', 'Rosa', 'Sven', 'Tara', 'Umut'];
const LAST = ['Müller', 'Schmidt', 'Novak', 'Rossi', 'García', 'Dubois', 'Jansen', 'Kowalski', 'Nielsen', 'Silva', 'Yilmaz', 'Horvat', 'Smith', 'Popescu', 'Ivanova'];
const COUNTRIES = ['DE', 'FR', 'NL', 'PL', 'IT', 'ES', 'SE', 'AT', 'CH', 'BE', 'CZ', 'DK'];
const STATUSES = ['new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded', 'on_hold'];
const KINDS = ['page_view', 'login', 'logout', 'search', 'add_to_cart', 'checkout', 'api_call'];
const PATHS = ['/', '/products', '/products/42', '/cart', '/checkout', '/account', '/search?q=backup', '/api/v1/orders', '/help/faq'];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0', 'Mozilla/5.0 (Macintosh) Safari/605.1.15', 'curl/8.5.0', 'Mozilla/5.0 (Windows NT 10.0) Chrome/131.0'];
const WORDS = ['please', 'deliver', 'after', 'noon', 'gift', 'wrap', 'call', 'before', 'door', 'code', 'fragile', 'leave', 'at', 'reception', 'thanks'];

const BASE_TIME = Date.UTC(2024, 0, 1);
const DUMP_DAY = Date.UTC(2026, 11, 1);

const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const DATE_PREFIX = new Map<number, string>();

/** `YYYY-MM-DD HH:MM:SS+00` (UTC), without a Date per row: the generator writes tens of millions of them. */
function timestamp(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  let prefix = DATE_PREFIX.get(days);
  if (prefix === undefined) {
    prefix = `${new Date(days * 86_400_000).toISOString().slice(0, 10)} `;
    DATE_PREFIX.set(days, prefix);
  }
  const seconds = Math.floor((ms - days * 86_400_000) / 1000);
  return `${prefix}${TWO_DIGITS[Math.floor(seconds / 3600)]}:${TWO_DIGITS[Math.floor(seconds / 60) % 60]}:${TWO_DIGITS[seconds % 60]}+00`;
}

function money(r: RowRandom, max: number): string {
  const cents = r.below(max * 100);
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

interface TableDef {
  name: string;
  columns: string;
  create: string;
  constraint: string;
  /** Share of the dump's bytes. */
  share: number;
  /** The row's text (with its newline). `stable` seeds what never changes, `mutable` what an edit changes; `day` dates updated_at. */
  row(id: number, stable: RowRandom, mutable: RowRandom, day: number): string;
}

const TABLES: readonly TableDef[] = [
  {
    name: 'customers',
    columns: 'id, name, email, country, balance, created_at, updated_at',
    create: 'id bigint NOT NULL,\n    name text NOT NULL,\n    email text NOT NULL,\n    country character(2) NOT NULL,\n    balance numeric(12,2) NOT NULL,\n    created_at timestamp with time zone NOT NULL,\n    updated_at timestamp with time zone NOT NULL',
    constraint: 'customers_pkey PRIMARY KEY (id)',
    share: 0.15,
    row(id, stable, mutable, day) {
      const first = stable.pick(FIRST);
      const last = stable.pick(LAST);
      const created = BASE_TIME + stable.below(700 * 86_400) * 1000;
      return `${id}\t${first} ${last}\t${first.toLowerCase()}.${last.toLowerCase()}${id}@example.com\t${stable.pick(COUNTRIES)}\t${money(mutable, 5000)}\t${timestamp(created)}\t${timestamp(DUMP_DAY + day * 86_400_000 - mutable.below(86_400) * 1000)}\n`;
    },
  },
  {
    name: 'orders',
    columns: 'id, customer_id, status, total, currency, note, created_at, updated_at',
    create: 'id bigint NOT NULL,\n    customer_id bigint NOT NULL,\n    status text NOT NULL,\n    total numeric(12,2) NOT NULL,\n    currency character(3) NOT NULL,\n    note text,\n    created_at timestamp with time zone NOT NULL,\n    updated_at timestamp with time zone NOT NULL',
    constraint: 'orders_pkey PRIMARY KEY (id)',
    share: 0.3,
    row(id, stable, mutable, day) {
      const words = mutable.below(4) === 0 ? Array.from({ length: 2 + mutable.below(6) }, () => mutable.pick(WORDS)).join(' ') : '\\N';
      const created = BASE_TIME + stable.below(700 * 86_400) * 1000;
      return `${id}\t${1 + stable.below(1_000_000)}\t${mutable.pick(STATUSES)}\t${money(mutable, 900)}\tEUR\t${words}\t${timestamp(created)}\t${timestamp(DUMP_DAY + day * 86_400_000 - mutable.below(86_400) * 1000)}\n`;
    },
  },
  {
    name: 'order_items',
    columns: 'id, order_id, sku, quantity, unit_price, updated_at',
    create: 'id bigint NOT NULL,\n    order_id bigint NOT NULL,\n    sku text NOT NULL,\n    quantity integer NOT NULL,\n    unit_price numeric(10,2) NOT NULL,\n    updated_at timestamp with time zone NOT NULL',
    constraint: 'order_items_pkey PRIMARY KEY (id)',
    share: 0.25,
    row(id, stable, mutable, day) {
      return `${id}\t${1 + Math.floor(id / 3)}\tSKU-${String(stable.below(100_000)).padStart(5, '0')}\t${1 + mutable.below(12)}\t${money(mutable, 300)}\t${timestamp(DUMP_DAY + day * 86_400_000 - mutable.below(86_400) * 1000)}\n`;
    },
  },
  {
    name: 'events',
    columns: 'id, occurred_at, kind, payload',
    create: 'id bigint NOT NULL,\n    occurred_at timestamp with time zone NOT NULL,\n    kind text NOT NULL,\n    payload jsonb NOT NULL',
    constraint: 'events_pkey PRIMARY KEY (id)',
    share: 0.3,
    row(id, stable, mutable) {
      const at = BASE_TIME + id * 1370;
      const ip = `10.${stable.below(256)}.${stable.below(256)}.${stable.below(256)}`;
      return `${id}\t${timestamp(at)}\t${stable.pick(KINDS)}\t{"ip": "${ip}", "ua": "${stable.pick(AGENTS)}", "path": "${mutable.pick(PATHS)}", "ms": ${mutable.below(5000)}, "session": "${mutable.next().toString(16).padStart(8, '0')}"}\n`;
    },
  },
];

/** Edit codes per row: 0 original; 1 + 2*(day-1) + kind for an edit on that day (kind 0 keeps the length); DELETED. */
const DELETED = 255;

interface TableState {
  def: TableDef;
  seed: number;
  /** Edit code per row id - 1. */
  edits: Uint8Array;
  rows: number;
}

export interface SqlDumpEdits {
  updated: number;
  sameLength: number;
  inserted: number;
  deleted: number;
}

/** The S6 dump: its state in memory (one byte a row), its bytes rendered on demand. */
export class SqlDump {
  readonly seed: string;
  readonly #tables: TableState[];
  #day = 0;

  constructor(seed: string, targetBytes: number) {
    this.seed = seed;
    const seedWord = createHash('sha256').update(`${seed}:dump`).digest().readUInt32LE(0);
    this.#tables = TABLES.map((def, index) => {
      const tableSeed = mix(seedWord, index + 1, 0x51ed);
      // The mean row size, sampled twice: ids grow longer with the row count, so the second sample sits in the middle.
      let rows = 2000;
      for (let pass = 0; pass < 2; pass += 1) {
        const from = Math.floor(rows / 2);
        let sample = 0;
        for (let id = from + 1; id <= from + 2000; id += 1) sample += Buffer.byteLength(this.#rowText(def, tableSeed, id, 0));
        rows = Math.max(100, Math.round((targetBytes * def.share) / (sample / 2000)));
      }
      // Room for the inserts of 7 days (0.05% of the rows a day).
      const edits = new Uint8Array(Math.ceil(rows * 1.01) + 64);
      return { def, seed: tableSeed, edits, rows };
    });
  }

  get day(): number {
    return this.#day;
  }

  #rowText(def: TableDef, tableSeed: number, id: number, edit: number): string {
    const stable = new RowRandom(mix(tableSeed, id, 0));
    if (edit === 0) return def.row(id, stable, new RowRandom(mix(tableSeed, id, 0x9e37)), 0);
    const day = 1 + ((edit - 1) >> 1);
    if (((edit - 1) & 1) === 1) return def.row(id, stable, new RowRandom(mix(tableSeed, id, 0x9e37 + edit)), day);
    // A same-length edit keeps every value but updated_at (the last column), whose width is fixed.
    const original = this.#rowText(def, tableSeed, id, 0);
    const cut = original.lastIndexOf('\t');
    return `${original.slice(0, cut)}\t${timestamp(DUMP_DAY + day * 86_400_000 - (mix(tableSeed, id, edit) % 86_400) * 1000)}\n`;
  }

  /** The dump's bytes in pieces of about 1 MiB. */
  *pieces(): Generator<Buffer> {
    const header = [
      '--\n-- PostgreSQL database dump\n--\n\n',
      "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n",
      ...TABLES.map((t) => `CREATE TABLE public.${t.name} (\n    ${t.create}\n);\n\nALTER TABLE public.${t.name} OWNER TO shop;\n\n`),
    ].join('');
    yield Buffer.from(header);
    const PIECE = 1 << 20;
    for (const table of this.#tables) {
      // Rows are written straight into a fresh buffer per piece (a row is far below the 64 KiB of slack).
      let piece = Buffer.allocUnsafe(PIECE + 65_536);
      let used = piece.write(`--\n-- Data for Name: ${table.def.name}; Type: TABLE DATA; Schema: public; Owner: shop\n--\n\nCOPY public.${table.def.name} (${table.def.columns}) FROM stdin;\n`);
      for (let id = 1; id <= table.rows; id += 1) {
        const edit = table.edits[id - 1] as number;
        if (edit === DELETED) continue;
        used += piece.write(this.#rowText(table.def, table.seed, id, edit), used);
        if (used >= PIECE) {
          yield piece.subarray(0, used);
          piece = Buffer.allocUnsafe(PIECE + 65_536);
          used = 0;
        }
      }
      used += piece.write('\\.\n\n\n', used);
      yield piece.subarray(0, used);
    }
    yield Buffer.from(
      `${TABLES.map((t) => `ALTER TABLE ONLY public.${t.name}\n    ADD CONSTRAINT ${t.constraint};\n\n`).join('')}--\n-- PostgreSQL database dump complete\n--\n\n`,
    );
  }

  /** Writes the dump to `file` (replacing it); returns its size. */
  write(file: string): number {
    const fd = openSync(file, 'w');
    let bytes = 0;
    try {
      for (const piece of this.pieces()) bytes += writeSync(fd, piece);
    } finally {
      closeSync(fd);
    }
    return bytes;
  }

  /** Moves to the next day: edits `share` of the live rows, scattered, plus a few inserts and deletes. */
  nextDay(share = 0.01): SqlDumpEdits {
    this.#day += 1;
    const day = this.#day;
    if (day > 7 * 16) throw new Error('SqlDump: too many days for the edit codes');
    const prng = new Prng(`${this.seed}:dump:day${day}`);
    const live = this.#tables.reduce((sum, t) => sum + t.rows, 0);
    const result: SqlDumpEdits = { updated: 0, sameLength: 0, inserted: 0, deleted: 0 };
    const pickRow = (): [TableState, number] => {
      let at = Math.floor(prng.next() * live);
      for (const table of this.#tables) {
        if (at < table.rows) return [table, at];
        at -= table.rows;
      }
      const last = this.#tables[this.#tables.length - 1] as TableState;
      return [last, last.rows - 1];
    };
    for (let i = Math.round(live * share); i > 0; i -= 1) {
      const [table, index] = pickRow();
      if (table.edits[index] === DELETED) continue;
      // events has no updated_at: its edits always change the row's length.
      const kind = prng.next() < 0.5 && table.def.name !== 'events' ? 0 : 1;
      table.edits[index] = 1 + 2 * (day - 1) + kind;
      result.updated += 1;
      if (kind === 0) result.sameLength += 1;
    }
    const few = Math.max(1, Math.round(live * 0.0005));
    for (let i = 0; i < few; i += 1) {
      const [table, index] = pickRow();
      if (table.edits[index] !== DELETED) {
        table.edits[index] = DELETED;
        result.deleted += 1;
      }
    }
    for (let i = 0; i < few; i += 1) {
      const [table] = pickRow();
      if (table.rows >= table.edits.length) continue;
      table.edits[table.rows] = 1 + 2 * (day - 1) + 1;
      table.rows += 1;
      result.inserted += 1;
    }
    return result;
  }
}

/** The first problem that keeps S7 from running (missing tools, no server), or null. */
export function pgbenchUnavailable(adminUrl: string): string | null {
  for (const tool of ['pgbench', 'pg_dump', 'psql']) {
    if (spawnSync(tool, ['--version'], { encoding: 'utf8' }).status !== 0) {
      return `${tool} is not installed (apt-get install postgresql-client postgresql-contrib)`;
    }
  }
  const probe = spawnSync('psql', [adminUrl, '-Atqc', 'select 1'], { encoding: 'utf8', timeout: 15_000 });
  if (probe.status !== 0) return `no PostgreSQL server at ${redactUrl(adminUrl)}: ${(probe.stderr || probe.error?.message || '').trim().split('\n')[0]}`;
  return null;
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

function run(tool: string, args: string[], timeoutMs = 60 * 60_000): string {
  const result = spawnSync(tool, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (result.status !== 0) {
    throw new Error(`${tool} ${args.filter((a) => !a.includes('://')).join(' ')} failed (${result.status ?? result.signal}): ${(result.stderr || result.error?.message || '').trim().slice(-1000)}`);
  }
  return result.stdout;
}

/** S7's database: a scratch database on `adminUrl`'s server, created by `init`, dropped by `drop`. */
export class PgbenchDatabase {
  readonly name: string;
  readonly #adminUrl: string;
  readonly #url: string;
  readonly #seed: number;

  constructor(adminUrl: string, seed: string) {
    this.#adminUrl = adminUrl;
    this.name = `cairn_bench_s7_${process.pid}_${Date.now()}`;
    const url = new URL(adminUrl);
    url.pathname = `/${this.name}`;
    this.#url = url.toString();
    this.#seed = new Prng(`${seed}:pgbench`).int(1, 2 ** 31 - 1);
  }

  /** Creates the database and fills it: `pgbench -i -s scale`. */
  init(scale: number): void {
    run('psql', [this.#adminUrl, '-qc', `create database ${this.name}`]);
    run('pgbench', ['-i', '-q', '-s', String(scale), this.#url]);
  }

  /** One day of work: `pgbench -t transactions`, one client, a seed from the bench's (pgbench --random-seed). */
  work(transactions: number, day: number): void {
    run('pgbench', ['-n', '-t', String(transactions), `--random-seed=${this.#seed + day}`, this.#url]);
  }

  /** A plain-text `pg_dump` to `file`. */
  dump(file: string): void {
    run('pg_dump', ['--no-owner', '-f', file, this.#url]);
  }

  drop(): void {
    spawnSync('psql', [this.#adminUrl, '-qc', `drop database if exists ${this.name} with (force)`], { encoding: 'utf8' });
  }
}
