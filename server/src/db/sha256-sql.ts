/**
 * SQL fragments for SHA-256 columns, stored as bytea (decision 90) while
 * the code speaks 64 lower-case hex digits. Drizzle's typed columns convert
 * by themselves (schema.ts sha256Column); raw statements use these, and read a hash back with `encode(<column>, 'hex')`.
 */
import { sql, type SQL } from 'drizzle-orm';

/** One hash as a bytea value. */
export function hashValue(hex: string): SQL {
  return sql`decode(${hex}, 'hex')`;
}

/** A set of hashes as a subquery of bytea values, one JSON parameter however many there are (decision 38). */
export function hashSet(hexes: readonly string[]): SQL {
  return sql`(select decode(value, 'hex') from jsonb_array_elements_text(${JSON.stringify(hexes)}::jsonb))`;
}
