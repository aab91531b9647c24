import { randomBytes } from 'node:crypto';
import { sha256Hex } from '@cairn/shared';

const TOKEN_PREFIX = 'cairn_';

/** A new agent token: 256 random bits. Only `hash` and `prefix` are stored. */
export function newAgentToken(): { token: string; hash: string; prefix: string } {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, hash: hashAgentToken(token), prefix: token.slice(0, TOKEN_PREFIX.length + 6) };
}

export function hashAgentToken(token: string): string {
  return sha256Hex(token);
}
