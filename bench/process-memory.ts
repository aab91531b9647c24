/**
 * Peak resident memory of a process tree, from /proc (Linux).
 *
 * The agent and the server run as one node process each (tsx as a loader),
 * but the tree is still walked and the largest VmHWM taken, so a program that
 * runs helpers in child processes is measured by its largest part.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';

async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === pid) children.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** `pid` and all its descendants. */
export async function processTree(pid: number): Promise<number[]> {
  const all = [pid];
  for (let i = 0; i < all.length; i += 1) all.push(...(await childrenOf(all[i] as number)));
  return all;
}

async function statusField(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = status.match(new RegExp(`${field}:\\s+(\\d+) kB`));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The largest peak RSS (VmHWM, bytes) among the processes of the tree; null when none is readable. */
export async function treePeakRss(pid: number): Promise<number | null> {
  let peak: number | null = null;
  for (const member of await processTree(pid)) {
    const hwm = await statusField(member, 'VmHWM');
    if (hwm !== null && (peak === null || hwm > peak)) peak = hwm;
  }
  return peak;
}

/**
 * Resets the peak RSS of every process in the tree (`echo 5 > clear_refs`,
 * Linux 4.0+), so a long-running server's peak can be read per scenario.
 * Returns false when the kernel refused (the peak is then cumulative).
 */
export async function resetTreePeakRss(pid: number): Promise<boolean> {
  let ok = true;
  for (const member of await processTree(pid)) {
    try {
      await writeFile(`/proc/${member}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** Polls VmHWM of one process until stopped; for programs run without GNU time. */
export function pollPeakRss(pid: number, intervalMs = 50): { stop(): number | null } {
  let peak: number | null = null;
  const timer = setInterval(() => {
    void statusField(pid, 'VmHWM').then((hwm) => {
      if (hwm !== null && (peak === null || hwm > peak)) peak = hwm;
    });
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** Proportional set size of one process in bytes (shared pages split among their users), or 0 when unreadable. */
async function pss(pid: number): Promise<number> {
  try {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const match = rollup.match(/^Pss:\s+(\d+) kB/m);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The summed PSS of the given processes, in bytes: a server and its database processes counted once each, shared memory once. */
export async function totalPss(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of new Set(pids)) total += await pss(pid);
  return total;
}

/**
 * Samples the summed PSS of `members()` (re-evaluated at each sample, since
 * PostgreSQL backends come and go) until stopped, and keeps the peak. There
 * is no kernel high-water mark for PSS, so a short spike between samples can
 * be missed.
 */
export function pollPeakPss(members: () => Promise<number[]>, intervalMs = 200): { stop(): Promise<number | null> } {
  let peak: number | null = null;
  let running = true;
  const sample = async () => {
    const value = await totalPss(await members());
    if (value > 0 && (peak === null || value > peak)) peak = value;
  };
  const loop = (async () => {
    while (running) {
      await sample().catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await sample().catch(() => {});
      return peak;
    },
  };
}
