import { spawn } from 'node:child_process';
import { LIMITS, storableText, type PreCommandResult } from '@cairn/shared';

export interface CommandSpec {
  command: string;
  timeoutSeconds: number;
  source: 'server' | 'local';
}

/** After the shell exits, how long its output pipes may stay open (a backgrounded child holding them). */
const DRAIN_GRACE_MS = 2_000;
/** Between SIGTERM to the process group and SIGKILL. */
const KILL_GRACE_MS = 3_000;

/**
 * Runs one pre-command with `sh -c` in its own process group. At its timeout
 * the whole group gets SIGTERM, then SIGKILL; combined stdout and stderr are
 * captured up to LIMITS.commandOutputBytes (the rest is drained and dropped),
 * with NUL bytes spelled visibly (`storableText`) so that no server, however
 * old, is sent output it cannot store. Never throws and never waits on a descendant that keeps the pipes open.
 */
export function runCommand(spec: CommandSpec, cwd?: string): Promise<PreCommandResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let captured = 0;
    let truncated = false;
    let timedOut = false;
    const capture = (data: Buffer) => {
      const room = LIMITS.commandOutputBytes - captured;
      if (room <= 0) {
        truncated = true;
        return;
      }
      const slice = data.length > room ? data.subarray(0, room) : data;
      if (slice.length < data.length) truncated = true;
      chunks.push(slice);
      captured += slice.length;
    };
    const child = spawn('sh', ['-c', spec.command], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', capture);
    child.stderr.on('data', capture);

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const timeoutTimer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, spec.timeoutSeconds * 1000);

    let finished = false;
    const finish = (exitCode: number | null, extra?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timeoutTimer);
      if (killTimer) clearTimeout(killTimer);
      if (timedOut) killGroup('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
      let output = Buffer.concat(chunks).toString('utf8');
      if (truncated) output += `\n[output truncated at ${LIMITS.commandOutputBytes} bytes]`;
      if (timedOut) output += `\n[killed after the ${spec.timeoutSeconds} s timeout]`;
      if (extra) output += `\n${extra}`;
      resolve({
        command: spec.command,
        source: spec.source,
        exitCode,
        durationMs: Math.round(performance.now() - started),
        timedOut,
        output: storableText(output.trim()),
      });
    };
    child.once('error', (error) => finish(null, `failed to start: ${error.message}`));
    child.once('exit', (code) => {
      // Give the pipes a moment to deliver the last output, but do not wait for descendants that hold them.
      const drain = setTimeout(() => finish(timedOut ? null : code), DRAIN_GRACE_MS);
      child.once('close', () => {
        clearTimeout(drain);
        finish(timedOut ? null : code);
      });
    });
  });
}

export function commandFailed(result: PreCommandResult): boolean {
  return result.refused === true || result.timedOut || result.exitCode !== 0;
}
