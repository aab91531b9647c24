import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server-config.ts';

describe('REPLICA_* settings', () => {
  it('leave the replica off by default, with a 6 h lag alert', () => {
    const config = loadServerConfig({});
    expect(config.replica).toBeUndefined();
    expect(config.alerts.replicaLagSeconds).toBe(21_600);
  });

  it('take a directory, with a pass every minute, a 7 day delete grace, and an hourly export kept 24 times by default', () => {
    expect(loadServerConfig({ DATA_DIR: '/srv/cairn', REPLICA_DIR: '/mnt/second/replica' }).replica).toEqual({
      store: { kind: 'disk', dir: path.resolve('/mnt/second/replica') },
      intervalSeconds: 60,
      deleteGraceSeconds: 604_800,
      exportIntervalSeconds: 3600,
      exportKeep: 24,
    });
  });

  it('take an S3 bucket with its own endpoint and credentials, path style by default with an endpoint', () => {
    const config = loadServerConfig({
      S3_BUCKET: 'cairn',
      S3_ENDPOINT: 'http://minio:9000',
      REPLICA_S3_BUCKET: 'cairn',
      REPLICA_S3_ENDPOINT: 'https://s3.elsewhere.example',
      REPLICA_S3_REGION: 'eu-central-1',
      REPLICA_S3_ACCESS_KEY_ID: 'replica',
      REPLICA_S3_SECRET_ACCESS_KEY: 'replica-secret',
      REPLICA_INTERVAL_SECONDS: '30',
      REPLICA_DELETE_GRACE_SECONDS: '0',
      REPLICA_EXPORT_INTERVAL_SECONDS: '600',
      REPLICA_EXPORT_KEEP: '3',
    });
    expect(config.replica).toEqual({
      store: {
        kind: 's3',
        s3: {
          bucket: 'cairn',
          endpoint: 'https://s3.elsewhere.example',
          region: 'eu-central-1',
          forcePathStyle: true,
          accessKeyId: 'replica',
          secretAccessKey: 'replica-secret',
        },
      },
      intervalSeconds: 30,
      deleteGraceSeconds: 0,
      exportIntervalSeconds: 600,
      exportKeep: 3,
    });
  });

  it.each([
    [{ REPLICA_DIR: '/a', REPLICA_S3_BUCKET: 'b' }, 'REPLICA_DIR and REPLICA_S3_BUCKET cannot both be set'],
    [{ DATA_DIR: '/srv/cairn', REPLICA_DIR: '/srv/cairn/blobs' }, 'REPLICA_DIR must be another directory than the primary store'],
    [{ DATA_DIR: '/srv/cairn', REPLICA_DIR: '/srv/cairn/blobs/replica' }, 'REPLICA_DIR must be another directory than the primary store'],
    [{ DATA_DIR: '/srv/cairn', REPLICA_DIR: '/srv' }, 'REPLICA_DIR must be another directory than the primary store'],
    [{ S3_BUCKET: 'cairn', REPLICA_S3_BUCKET: 'cairn' }, 'REPLICA_S3_BUCKET must be another bucket'],
    [{ REPLICA_S3_ENDPOINT: 'http://minio:9000' }, 'REPLICA_S3_ENDPOINT and REPLICA_S3_ACCESS_KEY_ID need REPLICA_S3_BUCKET'],
    [{ REPLICA_S3_BUCKET: 'b', REPLICA_S3_ACCESS_KEY_ID: 'only-one' }, 'REPLICA_S3_ACCESS_KEY_ID and REPLICA_S3_SECRET_ACCESS_KEY must be set together'],
    [{ REPLICA_S3_BUCKET: 'b', REPLICA_S3_ENDPOINT: 'not a url' }, 'REPLICA_S3_ENDPOINT'],
    [{ REPLICA_DIR: '/r', REPLICA_INTERVAL_SECONDS: '0' }, 'REPLICA_INTERVAL_SECONDS must be an integer between 1 and 86400, got "0"'],
    [{ REPLICA_DIR: '/r', REPLICA_DELETE_GRACE_SECONDS: '-1' }, 'REPLICA_DELETE_GRACE_SECONDS must be an integer'],
    [{ REPLICA_DIR: '/r', REPLICA_EXPORT_INTERVAL_SECONDS: '0' }, 'REPLICA_EXPORT_INTERVAL_SECONDS must be an integer between 1 and 604800, got "0"'],
    [{ REPLICA_DIR: '/r', REPLICA_EXPORT_KEEP: '0' }, 'REPLICA_EXPORT_KEEP must be an integer between 1 and 10000'],
    [{ REPLICA_LAG_ALERT_SECONDS: '5' }, 'REPLICA_LAG_ALERT_SECONDS must be an integer between 60'],
  ])('refuses %o, naming the variable', (env, message) => {
    expect(() => loadServerConfig(env)).toThrow(message);
  });

  it('allow the same bucket name at another endpoint', () => {
    const config = loadServerConfig({ S3_BUCKET: 'cairn', S3_ENDPOINT: 'http://a:9000', REPLICA_S3_BUCKET: 'cairn', REPLICA_S3_ENDPOINT: 'http://b:9000' });
    expect(config.replica?.store.kind).toBe('s3');
  });
});
