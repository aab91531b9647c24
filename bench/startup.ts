/**
 * The bench's start-up measurement alone, repeated: spawn the server as the
 * bench does (fresh DATA_DIR, embedded PostgreSQL), seconds to the first 200
 * from /readyz, then the summed PSS of the server and its database processes
 * 3 s later. `npx tsx bench/startup.ts [runs] [--keep]` (--keep: the same
 * DATA_DIR for every run after the first, i.e. restarts without initdb).
 * CAIRN_BENCH_NODE=PATH runs the server under that node (without tsx when it
 * strips types itself, as the images do), like run.ts's --node.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { startServerProcess } from '../test/helpers/processes.ts';
import { benchNode } from './cairn-runner.ts';
import { processTree, totalPss } from './process-memory.ts';

const runs = Number(process.argv[2] ?? 5);
const keep = process.argv.includes('--keep');
const runtime = benchNode(undefined);
console.log(`server on node ${runtime.version}${runtime.stripsTypes ? ', types stripped by node (no tsx)' : ', through tsx'}`);
const root = await mkdtemp(path.join(tmpdir(), 'cairn-startup-'));
const rows: string[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const dataDir = path.join(root, keep ? 'data' : `data-${i}`);
    const load = loadavg()[0]?.toFixed(1);
    const spawned = performance.now();
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_USERNAME: 'bench',
      ADMIN_PASSWORD: 'bench-password-1',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      GC_INTERVAL_SECONDS: '86400',
      RETENTION_SWEEP_INTERVAL_SECONDS: '86400',
    }, runtime);
    for (;;) {
      const ready = await fetch(`${server.url}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seconds = (performance.now() - spawned) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const pids = await processTree(server.pid);
    const all = await totalPss(pids);
    const own = await totalPss([server.pid]);
    rows.push(`run ${i + 1}: ready ${seconds.toFixed(2)} s, idle PSS ${(all / 2 ** 20).toFixed(1)} MiB (server ${(own / 2 ** 20).toFixed(1)}, database ${((all - own) / 2 ** 20).toFixed(1)}, ${pids.length - 1} child processes), load ${load}`);
    console.log(rows.at(-1));
    if (process.env.SHOW_LOG) console.log(server.output());
    await server.stop();
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
