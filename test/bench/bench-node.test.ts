/**
 * `npm run bench -- --node PATH` (or CAIRN_BENCH_NODE): the server and the
 * agent run under that binary, without tsx when it strips types itself, as
 * the images run them (decision 182).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchNode } from '../../bench/cairn-runner.ts';
import { ensureImageNode, IMAGE_NODE_MAJOR } from '../deploy/image-node.ts';
import { HOST_NODE, nodeRuntime, startProcess } from '../helpers/processes.ts';

const imageNode = path.join(ensureImageNode(), 'node');
let tmp: string | undefined;

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Runs a TypeScript script through startProcess and returns what it printed about its own process. */
async function probe(runtime: ReturnType<typeof nodeRuntime>): Promise<{ version: string; execArgv: string[] }> {
  tmp ??= await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-node-'));
  // .mts: an ES module without a package.json (the tests' tsx loader is its ESM half).
  const script = path.join(tmp, 'probe.mts');
  await writeFile(script, 'const answer: { version: string; execArgv: string[] } = { version: process.version, execArgv: process.execArgv };\nconsole.log(JSON.stringify(answer));\n');
  const proc = startProcess(script, [], {}, tmp, runtime);
  const [line] = await proc.waitForOutput(/\{"version".*\}/);
  await proc.stop();
  return JSON.parse(line) as { version: string; execArgv: string[] };
}

describe('the node the bench runs Cairn under', () => {
  it("is this process's node through tsx by default, and CAIRN_BENCH_NODE's or --node's when given (--node first)", () => {
    expect(benchNode(undefined, {})).toBe(HOST_NODE);
    expect(HOST_NODE.stripsTypes).toBe(false);
    expect(benchNode(undefined, { CAIRN_BENCH_NODE: imageNode }).execPath).toBe(imageNode);
    expect(benchNode(process.execPath, { CAIRN_BENCH_NODE: imageNode }).execPath).toBe(process.execPath);
  });

  it(`runs a TypeScript entry point under Node ${IMAGE_NODE_MAJOR} without --import tsx`, async () => {
    const runtime = nodeRuntime(imageNode);
    expect(runtime.version).toMatch(new RegExp(`^v${IMAGE_NODE_MAJOR}\\.`));
    expect(runtime.stripsTypes).toBe(true);
    const seen = await probe(runtime);
    expect(seen.version).toBe(runtime.version);
    expect(seen.execArgv.join(' ')).not.toMatch(/tsx/);
  });

  it('runs it through tsx under the default node', async () => {
    const seen = await probe(HOST_NODE);
    expect(seen.version).toBe(process.version);
    expect(seen.execArgv.join(' ')).toMatch(/tsx/);
  });
});
