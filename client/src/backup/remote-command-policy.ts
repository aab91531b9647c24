export type CommandDecision = { allowed: true } | { allowed: false; reason: string };

/**
 * Whether a server-pushed pre-command may run here. The agent's owner has the
 * last word: ALLOW_REMOTE_COMMANDS=false refuses all of them, and an
 * allow-list admits only commands equal to one of its entries (exact match
 * after trimming: a prefix rule would let `; anything` ride along).
 */
export function decideRemoteCommand(command: string, allowRemote: boolean, allowlist: readonly string[] | undefined): CommandDecision {
  if (!allowRemote) return { allowed: false, reason: 'refused: ALLOW_REMOTE_COMMANDS=false on this agent' };
  if (allowlist !== undefined && !allowlist.includes(command.trim())) {
    return { allowed: false, reason: 'refused: not in REMOTE_COMMAND_ALLOWLIST on this agent' };
  }
  return { allowed: true };
}
