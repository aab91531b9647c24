import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RestoreProgress } from '../../src/restore/restore-progress.ts';

function terminal(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return Object.assign(stream, { isTTY, text: () => chunks.join('') });
}

describe('RestoreProgress', () => {
  it('on a terminal, redraws one line in place and ends it with the summary', () => {
    const out = terminal(true);
    const progress = new RestoreProgress(out, 2, 2048);
    progress.doneFiles = 1;
    progress.doneBytes = 1024;
    progress.update();
    progress.print('FAILED /x: broken');
    progress.doneFiles = 2;
    progress.doneBytes = 2048;
    progress.finish();
    const text = out.text();
    expect(text).toContain('\r\x1b[Krestoring: 1/2 files, 1.00 KiB/2.00 KiB (50%)');
    expect(text).toContain('\r\x1b[KFAILED /x: broken\n');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.slice(text.lastIndexOf('\r\x1b[K'))).toMatch(/^\r.\[Krestored: 2\/2 files, 2\.00 KiB\/2\.00 KiB \(100%\) in \d+\.\d s\n$/);
  });

  it('elsewhere, writes plain lines without control characters', () => {
    const out = terminal(false);
    const progress = new RestoreProgress(out, 1, 0);
    progress.update();
    progress.failed = 1;
    progress.doneFiles = 1;
    progress.finish();
    const text = out.text();
    expect(text).not.toContain('\x1b');
    expect(text).not.toContain('\r');
    expect(text.trim().split('\n').at(-1)).toMatch(/^restored: 1\/1 files, 0 B\/0 B \(100%\), 1 failed in/);
  });
});
