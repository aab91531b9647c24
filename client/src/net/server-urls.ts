/**
 * A server address as the agent keeps it (decision 152): one URL, or several
 * replicas' URLs separated by commas, tried in that order. Stored and
 * compared in the normalised form `formatServerUrls` writes.
 */

/** One http(s) URL without credentials and trailing slash; null when it is not one. */
export function normaliseServerUrl(input: string): string | null {
  try {
    const url = new URL(input.trim());
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    if (url.username || url.password) return null;
    return url.toString().replace(/\/+$/, '');
  } catch {
    return null;
  }
}

/** The URLs of a comma-separated list, normalised, duplicates dropped; `{ invalid }` names the entries that are not URLs. */
export function parseServerUrls(text: string): { urls: string[] } | { invalid: string[] } {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const invalid = entries.filter((entry) => normaliseServerUrl(entry) === null);
  if (invalid.length > 0 || entries.length === 0) return { invalid };
  return { urls: [...new Set(entries.map((entry) => normaliseServerUrl(entry) as string))] };
}

export function formatServerUrls(urls: readonly string[]): string {
  return urls.join(',');
}

/** The URLs of a stored list (already normalised; an entry that is not a URL is skipped). */
export function serverUrlsOf(stored: string): string[] {
  const parsed = parseServerUrls(stored);
  return 'urls' in parsed ? parsed.urls : stored.split(',').map((entry) => normaliseServerUrl(entry)).filter((url): url is string => url !== null);
}

/** URLs of `next` that `current` does not list: pointing the agent at any of them is a move to another server. */
export function addedServerUrls(current: string, next: string): string[] {
  const known = new Set(serverUrlsOf(current));
  return serverUrlsOf(next).filter((url) => !known.has(url));
}
