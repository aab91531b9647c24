import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DiskUsage {
  /** Sum of the sizes of the regular files (directories not counted). */
  apparentBytes: number;
  /** Blocks actually allocated, directories included (what the disk pays: at least 4 KiB per small file). */
  allocatedBytes: number;
}

async function fileBytes(directory: string): Promise<number> {
  let total = 0;
  const pending = [directory];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile()) total += (await stat(full)).size;
    }
  }
  return total;
}

/** Usage of a directory tree; zeros when it does not exist. */
export async function diskUsage(directory: string): Promise<DiskUsage> {
  try {
    const allocated = await run('du', ['-sk', directory], { maxBuffer: 1 << 20 });
    return {
      apparentBytes: await fileBytes(directory),
      allocatedBytes: Number(allocated.stdout.split(/\s/)[0]) * 1024,
    };
  } catch {
    return { apparentBytes: 0, allocatedBytes: 0 };
  }
}
