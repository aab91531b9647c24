import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { LiveEvent } from '@cairn/shared';
import type { Database, Db, Tx } from '../db/database.ts';

/** The PostgreSQL channel every replica LISTENs on (decision 122). */
export const LIVE_CHANNEL = 'cairn_live';

/** An event for one client's agent, as NOTIFY carries it between replicas. */
export interface LiveNotice {
  clientId: string;
  event: Exclude<LiveEvent, 'hello'>;
}

/**
 * Tells the agent of `clientId` (on whichever replica holds its channel)
 * that something changed. Inside a transaction the NOTIFY is sent at commit
 * and dropped on rollback, so an agent never hears of a change that did not
 * happen, and never before it can read it.
 */
export async function notifyAgent(db: Db | Tx, clientId: string, event: LiveNotice['event']): Promise<void> {
  await db.execute(sql`select pg_notify(${LIVE_CHANNEL}, ${JSON.stringify({ clientId, event } satisfies LiveNotice)})`);
}

/** `closing`: this server is shutting down (the stream ends; the agent reconnects). */
type Listener = (event: LiveNotice['event'] | 'closing') => void;

/**
 * This process's side of the live channel: one LISTEN connection (started on
 * the first subscriber, not per agent: the embedded PostgreSQL allows few
 * connections), fanning each notice out to the agent streams of its client.
 */
export class LiveHub {
  readonly #listeners = new Map<string, Set<Listener>>();
  #listening: Promise<{ unlisten(): Promise<void> }> | null = null;
  #closed = false;

  private readonly database: Database;
  private readonly log: Logger;
  constructor(
    database: Database,
    log: Logger,
  ) {
    this.database = database;
    this.log = log;
  }

  /** Resolves once LISTEN is in place (so a notice sent after this reaches `listener`). */
  async subscribe(clientId: string, listener: Listener): Promise<() => void> {
    if (this.#closed) throw new Error('live hub closed');
    let set = this.#listeners.get(clientId);
    if (!set) this.#listeners.set(clientId, (set = new Set()));
    set.add(listener);
    const unsubscribe = () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(clientId) === set) this.#listeners.delete(clientId);
    };
    try {
      this.#listening ??= this.database.listen(
        LIVE_CHANNEL,
        (payload) => this.#dispatch(payload),
        () => this.log.debug('live channel listening'),
      );
      await this.#listening;
    } catch (error) {
      this.#listening = null;
      unsubscribe();
      throw error;
    }
    return unsubscribe;
  }

  /** Agent streams open in this process (for tests and metrics). */
  get streamCount(): number {
    let count = 0;
    for (const set of this.#listeners.values()) count += set.size;
    return count;
  }

  #dispatch(payload: string): void {
    let notice: LiveNotice;
    try {
      notice = JSON.parse(payload) as LiveNotice;
    } catch {
      this.log.warn('unreadable live notice');
      return;
    }
    for (const listener of [...(this.#listeners.get(notice.clientId) ?? [])]) listener(notice.event);
  }

  /** Ends every stream (as a revocation would not: the agent reconnects, to another replica) and UNLISTENs. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const set of this.#listeners.values()) for (const listener of [...set]) listener('closing');
    this.#listeners.clear();
    const listening = this.#listening;
    this.#listening = null;
    if (listening) await (await listening.catch(() => null))?.unlisten().catch(() => undefined);
  }
}
