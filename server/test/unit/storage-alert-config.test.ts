import { describe, expect, it } from 'vitest';
import { ConfigError } from '@cairn/shared';
import { loadServerConfig } from '../../src/config/server-config.ts';

function problems(env: Record<string, string>): string[] {
  try {
    loadServerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('S3_CAPACITY_BYTES', () => {
  it('is optional, and read as a whole number of bytes', () => {
    expect(loadServerConfig({}).alerts.s3CapacityBytes).toBeUndefined();
    expect(loadServerConfig({ S3_CAPACITY_BYTES: '' }).alerts.s3CapacityBytes).toBeUndefined();
    expect(loadServerConfig({ S3_CAPACITY_BYTES: '1099511627776' }).alerts.s3CapacityBytes).toBe(1024 ** 4);
  });

  it.each(['0', '-5', '1.5', '1 TB', '99999999999999999999'])('refuses %j, naming the variable', (value) => {
    const found = problems({ S3_CAPACITY_BYTES: value });
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('S3_CAPACITY_BYTES');
  });
});
