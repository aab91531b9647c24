import { describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server-config.ts';

describe('CLUSTER_HEARTBEAT_SECONDS and CLUSTER_LOST_AFTER_SECONDS', () => {
  it('default to a 10 s heartbeat and lost after 60 s', () => {
    expect(loadServerConfig({}).cluster).toEqual({ heartbeatSeconds: 10, lostAfterSeconds: 60 });
  });

  it.each([
    [{ CLUSTER_HEARTBEAT_SECONDS: '0' }, 'CLUSTER_HEARTBEAT_SECONDS must be an integer between 1 and 3600, got "0"'],
    [{ CLUSTER_LOST_AFTER_SECONDS: 'soon' }, 'CLUSTER_LOST_AFTER_SECONDS must be an integer between 2 and 86400, got "soon"'],
    [{ CLUSTER_HEARTBEAT_SECONDS: '30', CLUSTER_LOST_AFTER_SECONDS: '45' }, 'CLUSTER_LOST_AFTER_SECONDS must be at least twice CLUSTER_HEARTBEAT_SECONDS (60), got 45'],
  ])('refuses %o', (env, message) => {
    expect(() => loadServerConfig(env)).toThrow(message);
  });

  it('accepts a lost threshold of exactly twice the heartbeat', () => {
    expect(loadServerConfig({ CLUSTER_HEARTBEAT_SECONDS: '1', CLUSTER_LOST_AFTER_SECONDS: '2' }).cluster).toEqual({ heartbeatSeconds: 1, lostAfterSeconds: 2 });
  });
});
