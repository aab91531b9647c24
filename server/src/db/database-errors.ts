/**
 * The database could not be reached or opened at start-up; the message is one
 * line for the operator. In a module of its own so main.ts can tell it apart
 * without importing the database layer (drizzle) before the embedded
 * PostgreSQL is on its way.
 */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}
