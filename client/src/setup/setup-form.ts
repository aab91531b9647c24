import { parseMonitoredPaths } from '../config/agent-config.ts';
import { addedServerUrls, formatServerUrls, parseServerUrls } from '../net/server-urls.ts';

export interface SetupFormValues {
  serverUrl: string;
  /** An enrollment key from the dashboard: instead of username and password, first setup only. */
  enrollmentKey: string;
  username: string;
  password: string;
  clientName: string;
  monitoredPaths: string;
  /** Only when moving a configured agent to another server: an account on the current one. */
  currentUsername: string;
  currentPassword: string;
}

export interface ValidSetup {
  serverUrl: string;
  /** Set when the first setup registers with an enrollment key (username and password are then empty). */
  enrollmentKey?: string;
  username: string;
  password: string;
  clientName: string;
  monitoredPaths: string[];
  currentUsername: string;
  currentPassword: string;
}

export type FieldErrors = Partial<Record<keyof SetupFormValues, string>>;

const field = (body: Record<string, unknown>, name: string): string => {
  const value = body[name];
  return typeof value === 'string' ? value : '';
};

export function readSetupForm(body: unknown): SetupFormValues {
  const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  return {
    serverUrl: field(b, 'serverUrl').trim(),
    enrollmentKey: field(b, 'enrollmentKey').trim(),
    username: field(b, 'username').trim(),
    password: field(b, 'password'),
    clientName: field(b, 'clientName').trim(),
    monitoredPaths: field(b, 'monitoredPaths'),
    currentUsername: field(b, 'currentUsername').trim(),
    currentPassword: field(b, 'currentPassword'),
  };
}

/**
 * Validates the setup form; every field's problem at once. `current` is the
 * configured server when the agent is already set up: moving to another one
 * then also needs an account on the current server.
 */
export function validateSetupForm(values: SetupFormValues, current?: { serverUrl: string }): { setup?: ValidSetup; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const parsedUrls = parseServerUrls(values.serverUrl);
  const serverUrl = 'urls' in parsedUrls ? formatServerUrls(parsedUrls.urls) : null;
  if (values.serverUrl.trim() === '') errors.serverUrl = 'Enter the address of your Cairn server.';
  else if (serverUrl === null) {
    errors.serverUrl = 'Enter a full http:// or https:// address, e.g. https://backup.example.com (several replicas: separated by commas).';
  }
  // A key registers a new agent only; changing a configured one proves the account with its password.
  const byKey = current === undefined && values.enrollmentKey !== '';
  if (byKey) {
    if (values.enrollmentKey.length > 256) errors.enrollmentKey = 'That is longer than any enrollment key.';
  } else {
    if (values.username === '') errors.username = current === undefined ? 'Enter your user name on the server, or an enrollment key above.' : 'Enter your user name on the server.';
    if (values.password === '') errors.password = 'Enter your password on the server.';
  }
  if (values.clientName === '') errors.clientName = 'Give this machine a name.';
  else if (values.clientName.length > 200) errors.clientName = 'Use at most 200 characters.';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  else if (/[\u0000-\u001f\u007f]/.test(values.clientName)) errors.clientName = 'The name cannot contain control characters.';
  const lines = values.monitoredPaths
    .split(/[\r\n,]+/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const monitored = parseMonitoredPaths(lines);
  if (lines.length === 0) errors.monitoredPaths = 'List at least one folder to back up.';
  else if (monitored.invalid.length > 0) errors.monitoredPaths = `Use absolute paths (starting with /): ${monitored.invalid.join(', ')}`;
  // Adding an address is a move (a page visitor must not slip in a server of theirs); dropping one or reordering is not.
  const moving = current !== undefined && serverUrl !== null && addedServerUrls(current.serverUrl, serverUrl).length > 0;
  if (moving) {
    if (values.currentUsername === '') errors.currentUsername = `Moving to another server needs your account on ${current.serverUrl}.`;
    if (values.currentPassword === '') errors.currentPassword = 'Enter the password of that account.';
  }
  if (Object.keys(errors).length > 0 || serverUrl === null) return { errors };
  return {
    errors,
    setup: {
      serverUrl,
      ...(byKey && { enrollmentKey: values.enrollmentKey }),
      username: byKey ? '' : values.username,
      password: byKey ? '' : values.password,
      clientName: values.clientName,
      monitoredPaths: monitored.paths,
      currentUsername: moving ? values.currentUsername : values.username,
      currentPassword: moving ? values.currentPassword : values.password,
    },
  };
}

/**
 * True for a request a browser sent on behalf of another site. The setup page
 * has no session to steal, but a page elsewhere must not be able to press its
 * buttons: `Sec-Fetch-Site` (modern browsers) and `Origin` (older ones) must
 * name this page's own origin. Requests carrying neither (curl, scripts on the
 * machine) are allowed.
 */
export function isCrossOriginRequest(headers: Record<string, string | string[] | undefined>): boolean {
  const site = headers['sec-fetch-site'];
  // Fetch metadata is set by the browser itself and cannot be forged by a page: when present it decides.
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = headers.origin;
  if (typeof origin === 'string') {
    if (origin === 'null') return true;
    const host = headers.host;
    try {
      return typeof host !== 'string' || new URL(origin).host !== host;
    } catch {
      return true;
    }
  }
  return false;
}
