/**
 * Calls `stop` once, on the first SIGINT or SIGTERM. Later signals are still
 * handled (and ignored): left to the default action, a repeated SIGTERM would
 * kill the process in the middle of its orderly shutdown.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => void): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      stop(signal);
    });
  }
}
