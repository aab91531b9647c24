import type { FastifySchemaValidationError } from 'fastify';
import {
  CANONICAL_PATH_PATTERN,
  CANONICAL_PATH_RULE,
  CANONICAL_PREFIX_PATTERN,
  ISO_TIME_PATTERN,
  STORABLE_TEXT_PATTERN,
  STORABLE_TEXT_RULE,
} from '@cairn/shared';

/** The shared patterns said in words: a person reads the rule, not the regular expression. */
const PATTERN_RULES: ReadonlyMap<unknown, string> = new Map([
  [STORABLE_TEXT_PATTERN, STORABLE_TEXT_RULE],
  [CANONICAL_PATH_PATTERN, CANONICAL_PATH_RULE],
  [CANONICAL_PREFIX_PATTERN, CANONICAL_PATH_RULE],
  [ISO_TIME_PATTERN, 'must not be a leap second (seconds 60)'],
]);

/**
 * Fastify's `schemaErrorFormatter`: one message naming each failing field as
 * `body/upserts/0/path` (or `querystring/after`, `params/runId`), the
 * error handler answers it with a 400.
 */
export function formatSchemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const parts = errors.map((error) => {
    const rule = error.keyword === 'pattern' ? PATTERN_RULES.get(error.params.pattern) : undefined;
    return `${dataVar}${error.instancePath} ${rule ?? error.message ?? 'is invalid'}`;
  });
  return new Error(parts.join(', '));
}
