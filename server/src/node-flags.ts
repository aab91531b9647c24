/**
 * The V8 flags the server runs with, given on node's command line wherever
 * it is started: package.json's `server` script, scripts/start.ts, the
 * Dockerfile's CMD and the test and bench helpers (a test checks they agree).
 * A young generation of 2 x 2 MiB instead of V8's 2 x 16 MiB: the server's
 * short-lived garbage is request-sized, and the default let 32 MiB stay
 * committed, idle included (decision 178). It cannot be set once V8 runs, so
 * it is not in main.ts, unlike the heap's growth (see HEAP_GROWING_PERCENT).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * After each full collection V8 lets the old generation grow to this much
 * more than what survived before collecting again (decision 178). V8's own
 * factor (up to 4x) let S1's garbage (batch inserts, parsed commits) take
 * the heap to 90-100 MiB over a live set of at most 40 MiB. No limit on the
 * heap's size: a larger live set only makes V8 collect more often. Set by
 * main.ts once the server listens (V8 reads it at every collection).
 */
export const HEAP_GROWING_PERCENT = 30;
