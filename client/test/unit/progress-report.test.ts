import { describe, expect, it } from 'vitest';
import { progressReport } from '../../src/agent/agent-runtime.ts';
import { newProgress } from '../../src/backup/backup-progress.ts';

describe('progressReport', () => {
  it('derives the hashing rate and the ETA from the counters', () => {
    const progress = { ...newProgress(), phase: 'hashing' as const, startedAt: '2026-01-01T00:00:00.000Z', bytesToHash: 10_000, bytesHashed: 2_000 };
    const report = progressReport(progress, Date.parse('2026-01-01T00:00:10.000Z'));
    expect(report).toMatchObject({ phase: 'hashing', bytesPerSecond: 200, etaSeconds: 40 });
  });

  it('has no ETA before anything is hashed or when nothing is to hash', () => {
    const progress = { ...newProgress(), startedAt: '2026-01-01T00:00:00.000Z' };
    expect(progressReport(progress, Date.parse('2026-01-01T00:00:05.000Z')).etaSeconds).toBeNull();
    expect(progressReport({ ...progress, bytesToHash: 100 }, Date.parse('2026-01-01T00:00:05.000Z')).etaSeconds).toBeNull();
  });
});
