/**
 * The V8 flags the agent runs with, given on node's command line wherever
 * it is started as a long-running agent: package.json's `agent` script,
 * scripts/start.ts, the Dockerfile's CMD and the test and bench helpers (a
 * test checks they agree). A young generation of 2 x 16 MiB, which is
 * Node 20's default: Node 24's V8 sizes it from the machine's memory, and on
 * a 24 GiB host the agent then peaked at 356 MB in S1 instead of 242-251
 * (decision 203). It cannot be set once V8 runs, unlike the heap's growth
 * (main.ts, decision 202).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
