/**
 * Text PostgreSQL cannot hold. Its `text` type refuses NUL (U+0000), and
 * `jsonb` refuses both `\u0000` and an unpaired UTF-16 surrogate; an unpaired
 * surrogate in `text` is silently replaced by U+FFFD on the way in. JavaScript
 * strings and JSON carry all of them, so the protocol draws the line here
 * (decision 42):
 *
 * - identifiers (names, hostnames, paths, symlink targets, commands, patterns)
 *   must not contain them: the schemas refuse them with a 400 naming the field;
 * - free-form captured text (pre-command output, a run's error, log lines) is
 *   stored with each of them spelled as one visible character.
 */

/** A JSON-Schema `pattern` (matched with the `u` flag, so a surrogate pair is one code point) of text PostgreSQL can hold. */
export const STORABLE_TEXT_PATTERN = '^[^\\u0000\\uD800-\\uDFFF]*$';

/** What a schema error says when a field breaks STORABLE_TEXT_PATTERN. */
export const STORABLE_TEXT_RULE = 'must not contain NUL (\\u0000) or unpaired surrogate characters';

// NUL is the very character these look for.
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
// eslint-disable-next-line no-control-regex
const UNSTORABLE_ALL = /[\u0000\uD800-\uDFFF]/gu;

/** True when PostgreSQL `text` and `jsonb` hold `text` exactly. */
export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/**
 * Free-form text made storable: NUL becomes U+2400 (SYMBOL FOR NULL, shown as
 * "␀") and an unpaired surrogate U+FFFD, what UTF-8 decoding makes of one. One
 * UTF-16 unit becomes one, so a length limit that held before still holds.
 * Lossy only for those characters; any other text is returned unchanged.
 */
export function storableText(text: string): string {
  if (!UNSTORABLE.test(text)) return text;
  return text.replace(UNSTORABLE_ALL, (char) => (char === '\u0000' ? '\u2400' : '\uFFFD'));
}
