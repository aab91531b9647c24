/**
 * The file search's query language (decision 159), pure: what a person types
 * becomes LIKE patterns (matched with ILIKE, so case-insensitively).
 *
 * - Without `*` or `?` the term is a substring; with them a glob: `*` any run
 *   of characters (`/` included), `?` exactly one.
 * - Without a `/` the term is matched against the file's name (the last
 *   segment of its path); with one, against the path. A glob matches a
 *   whole name, or a whole path when it starts with `/`, or the end of a
 *   path from a `/` on (`docs/*.md` finds `/home/alice/docs/report.md`).
 *
 * `namePattern` is set for a name search (client_path_names and its trigram
 * index answer it); `pathPattern` always matches the whole path (a name
 * match is a path match too). LIKE's own `%`, `_` and `\` are escaped, so
 * they match themselves.
 */
export interface FileSearchPatterns {
  pathPattern: string;
  namePattern: string | null;
}

export const SEARCH_TERM_MAX = 200;

/** The term as LIKE text: `%`, `_`, `\` escaped; glob wildcards become `%` and `_` when `glob`. */
function likeText(term: string, glob: boolean): string {
  let out = '';
  for (const char of term) {
    if (char === '\\' || char === '%' || char === '_') out += '\\' + char;
    else if (glob && char === '*') out += '%';
    else if (glob && char === '?') out += '_';
    else out += char;
  }
  return out;
}

/** The patterns of a search term, or an error naming what is wrong with it. */
export function fileSearchPatterns(input: string): FileSearchPatterns | { error: string } {
  const term = input.trim();
  if (term === '') return { error: 'type part of a file name or path' };
  if (term.length > SEARCH_TERM_MAX) return { error: `at most ${SEARCH_TERM_MAX} characters` };
  const glob = /[*?]/.test(term);
  const body = likeText(term, glob);
  if (term.includes('/')) return { pathPattern: !glob ? `%${body}%` : term.startsWith('/') ? body : `%/${body}`, namePattern: null };
  const namePattern = glob ? body : `%${body}%`;
  // The name is what follows the last `/`: a path ending in `/` + the name's pattern.
  return { pathPattern: `%/${namePattern}`, namePattern };
}
