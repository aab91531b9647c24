/**
 * The dashboard session cookie: 256 random bits naming a row of `sessions`
 * (services/sessions.service.ts), where the idle timeout and the absolute
 * lifetime are enforced. The cookie carries no claims, so nothing in it can
 * be forged or outlive its row; it is set once at sign-in, not re-issued.
 */
export const SESSION_COOKIE = 'cairn_session';
