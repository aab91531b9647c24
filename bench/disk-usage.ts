import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DiskUsage {
  /** Sum of file sizes. */
  apparentBytes: number;
  /** Blocks actually allocated (what the disk pays, 4 KiB per small file at least). */
  allocatedBytes: number;
}

/** `du` of a directory tree; zeros when it does not exist. */
export async function diskUsage(directory: string): Promise<DiskUsage> {
  try {
    const apparent = await run('du', ['-sb', directory], { maxBuffer: 1 << 20 });
    const allocated = await run('du', ['-sk', directory], { maxBuffer: 1 << 20 });
    return {
      apparentBytes: Number(apparent.stdout.split(/\s/)[0]),
      allocatedBytes: Number(allocated.stdout.split(/\s/)[0]) * 1024,
    };
  } catch {
    return { apparentBytes: 0, allocatedBytes: 0 };
  }
}
