/**
 * Smoke test of the all-in-one deployment without a Docker engine: each
 * image's /app is staged on the host as its Dockerfile builds it (its npm
 * ci, production dependencies only; its COPYs with .dockerignore applied;
 * see image-staging.ts), and the image's own entry command (CMD/ENTRYPOINT
 * and WORKDIR parsed from the Dockerfile) runs there under Node 24, as in
 * node:24-slim, with the environment docker-compose.yml gives the service. What compose provides
 * is mapped to the host: the postgres service to a scratch database on the
 * local PostgreSQL, the minio service to a local S3-protocol server
 * (s3rver), the server service's host name to the server's loopback port,
 * and every volume to a temporary directory. The agent then has to
 * register, run its pg_dump pre-command and back up; the test sees the
 * files in the database and their bytes in S3.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { codecOfId, decodeChunk, defaultZstdBackend } from '../../server/src/storage/chunk-codec.ts';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { freePort, waitForHttp } from '../helpers/processes.ts';
import { DOCKERFILES, filledEnvExample, readCompose, readFinalStage, serviceEnvironment, serviceRole, type ComposeFileName, type ComposeService, type Role } from './deploy-files.ts';
import { stageImage, type StagedImage } from './image-staging.ts';
import { ensureImageNode, IMAGE_NODE_MAJOR } from './image-node.ts';

const pgAvailable = Boolean(process.env.TEST_DATABASE_URL || process.env.DATABASE_URL);

interface HostProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * The environment a service's container sees, with compose's host names,
 * ports and volumes replaced by their host equivalents in `mapping`.
 */
function hostEnvironment(role: Role, service: ComposeService, image: StagedImage, nodeDir: string, replacements: [string, string][], overrides: Record<string, string>) {
  const stage = readFinalStage(DOCKERFILES[role]);
  const env: Record<string, string> = { ...stage.env, ...serviceEnvironment(service), ...overrides };
  for (const [name, value] of Object.entries(env)) {
    let mapped = value;
    for (const [from, to] of replacements) mapped = mapped.split(from).join(to);
    env[name] = mapped;
  }
  // The image's own PATH entries (if any) in the staged image, then the image's Node, then the host's tools (pg_dump).
  env.PATH = (stage.env.PATH ?? '')
    .split(':')
    .filter((entry) => entry !== '' && entry !== '$PATH')
    .map((entry) => image.hostPath(entry))
    .concat(nodeDir, process.env.PATH ?? '/usr/bin:/bin')
    .join(':');
  env.HOME = process.env.HOME ?? os.tmpdir();
  // Node's compile cache (the image's /tmp/...) goes into the staged image, not the host's /tmp.
  if (env.NODE_COMPILE_CACHE) env.NODE_COMPILE_CACHE = image.hostPath(env.NODE_COMPILE_CACHE);
  return { env, command: stage.command, cwd: image.hostPath(stage.workdir ?? '/') };
}

function startHostProcess(command: string[], cwd: string, env: Record<string, string>): HostProcess {
  const [executable, ...args] = command as [string, ...string[]];
  const child = spawn(executable, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buffer = '';
  const onData = (data: Buffer) => {
    buffer = (buffer + data.toString('utf8')).slice(-200_000);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = once(child, 'exit');
  return {
    child,
    output: () => buffer,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it returns a value; fails with `describe()` if the process dies or the deadline passes. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, proc: HostProcess, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (proc.child.exitCode !== null) throw new Error(`process exited (${proc.child.exitCode}) before ${what}:\n${proc.output().slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function runHealthcheck(role: Role, env: Record<string, string>): number | null {
  const healthcheck = readFinalStage(DOCKERFILES[role]).healthcheck;
  if (!healthcheck) throw new Error(`${DOCKERFILES[role]} has no exec-form HEALTHCHECK`);
  const [executable, ...args] = healthcheck as [string, ...string[]];
  return spawnSync(executable, args, { env, timeout: 30_000 }).status;
}

/** The two ways the files deploy a server and an agent: the all-in-one file, and the split files on two machines. */
const DEPLOYMENTS: { name: string; serverFile: ComposeFileName; agentFile: ComposeFileName }[] = [
  { name: 'all on one host', serverFile: 'docker-compose.yml', agentFile: 'docker-compose.yml' },
  { name: 'server stack and a remote agent', serverFile: 'docker-compose.server.yml', agentFile: 'docker-compose.client.yml' },
];

function cairnService(file: ComposeFileName, role: Role, values: Record<string, string>): ComposeService {
  const service = Object.values(readCompose(file, values).services).find((candidate) => serviceRole(candidate) === role);
  if (!service) throw new Error(`${file} has no ${role} service`);
  return service;
}

describe.skipIf(!pgAvailable && !process.env.CI)(`compose deployments run from the images' entry commands on the host under Node ${IMAGE_NODE_MAJOR}`, () => {
  let tmp: string;
  let nodeDir: string;
  const images = new Map<Role, StagedImage>();

  beforeAll(async () => {
    nodeDir = ensureImageNode();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'cairn-smoke-'));
    for (const role of ['server', 'agent'] as const) {
      const image = await stageImage(role, path.join(tmp, `${role}-build`), nodeDir);
      // Node 24 strips the sources' types itself (decision 182). tsx is in the
      // images only as a dependency of the client package's bins (for Node
      // before 22.18); the entry commands must not need it, so the staged
      // copies run without it.
      await rm(image.hostPath('/app/node_modules/tsx'), { recursive: true, force: true });
      expect(existsSync(image.hostPath('/node_modules/tsx'))).toBe(false);
      images.set(role, image);
    }
  });

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('the agent image HEALTHCHECK passes when the agent runs as the image starts it (setup page mode)', async () => {
    // `docker run` of the image alone starts the setup page; compose's env-mode agent is checked below.
    const stage = readFinalStage(DOCKERFILES.agent);
    const stateDir = await mkdtemp(path.join(tmp, 'agent-ui-'));
    const env = {
      ...stage.env,
      CLIENT_UI_HOST: '127.0.0.1',
      CLIENT_UI_PORT: String(await freePort()),
      AGENT_STATE_DIR: stateDir,
      PATH: `${nodeDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: process.env.HOME ?? os.tmpdir(),
    };
    const agent = startHostProcess(stage.command, images.get('agent')!.hostPath(stage.workdir ?? '/'), env);
    try {
      await waitForHttp(`http://127.0.0.1:${env.CLIENT_UI_PORT}/healthz`, undefined, 60_000).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${agent.output().slice(-4000)}`);
      });
      expect(runHealthcheck('agent', env)).toBe(0);
    } finally {
      await agent.stop();
    }
  });

  describe.each(DEPLOYMENTS)('$name ($serverFile + $agentFile)', ({ serverFile, agentFile }) => {
    const sample = 'hello from the smoke test\n';
    let database: { url: string; drop(): Promise<void> } | undefined;
    let s3: RunningS3rver | undefined;
    let server: HostProcess | undefined;
    let agent: HostProcess | undefined;
    let serverEnv: Record<string, string>;
    let agentEnv: Record<string, string>;
    let sql: postgres.Sql | undefined;
    // The agent signs in as the admin in both set-ups, as a person following docs/deployment.md would.
    const defaults = filledEnvExample();
    const values = filledEnvExample({ CLIENT_NAME: 'smoke-host', AGENT_USERNAME: defaults.ADMIN_USERNAME ?? '', AGENT_PASSWORD: defaults.ADMIN_PASSWORD ?? '' });
    const services: Record<Role, ComposeService> = { server: cairnService(serverFile, 'server', values), agent: cairnService(agentFile, 'agent', values) };
    const volumeDirs = new Map<string, string>();
    const volume = (role: Role, target: string) => volumeDirs.get(`${role}:${target}`) as string;

    beforeAll(async () => {
      database = await createScratchPostgres();
      if (!database) throw new Error('the smoke test needs TEST_DATABASE_URL (a local PostgreSQL)');
      sql = postgres(database.url, { max: 1, onnotice: () => {} });
      s3 = await startS3rver({ bucket: serviceEnvironment(services.server).S3_BUCKET });
      // Every volume of the Cairn services (compose's and the images' own) becomes a temporary directory.
      const root = await mkdtemp(path.join(tmp, 'volumes-'));
      for (const role of ['server', 'agent'] as const) {
        const targets = [
          ...readFinalStage(DOCKERFILES[role]).volumes,
          ...(services[role].volumes ?? []).map((v) => (typeof v === 'string' ? (v.split(':')[1] ?? v) : v.target)),
        ];
        for (const target of targets) {
          const dir = path.join(root, role, target.replace(/\W+/g, '_'));
          await mkdir(dir, { recursive: true });
          volumeDirs.set(`${role}:${target}`, dir);
        }
      }
    });

    afterAll(async () => {
      await agent?.stop();
      await server?.stop();
      await sql?.end();
      await s3?.close();
      await database?.drop();
    });

    it('runs the server image command with the compose environment, and its HEALTHCHECK passes', async () => {
      const port = await freePort();
      const { env, command, cwd } = hostEnvironment('server', services.server, images.get('server')!, nodeDir, [], {
        ...s3!.env,
        DATABASE_URL: database!.url,
        DATA_DIR: volume('server', '/data'),
        HOST: '127.0.0.1',
        PORT: String(port),
      });
      expect(env.S3_BUCKET).toBe(s3!.bucket);
      for (const [name, value] of Object.entries(env)) {
        expect(value, `${name} still names a compose service`).not.toMatch(/\/\/(server|postgres|minio)[:/]/);
      }
      serverEnv = env;
      // It runs from the staged image, whose node_modules hold production dependencies only.
      expect(cwd.startsWith(tmp)).toBe(true);
      expect(existsSync(images.get('server')!.hostPath('/app/node_modules/fastify'))).toBe(true);
      expect(existsSync(images.get('server')!.hostPath('/app/node_modules/vitest'))).toBe(false);
      for (const role of ['server', 'agent'] as const) expect(existsSync(images.get(role)!.hostPath('/app/node_modules/tsx/package.json'))).toBe(false);
      server = startHostProcess(command, cwd, env);
      await waitForHttp(`http://127.0.0.1:${port}/healthz`, undefined, 120_000).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${server?.output().slice(-4000)}`);
      });
      expect(spawnSync('node', ['--version'], { env, encoding: 'utf8' }).stdout).toMatch(new RegExp(`^v${IMAGE_NODE_MAJOR}\\.`));
      expect(runHealthcheck('server', env)).toBe(0);
    });

    it('runs the agent image command with the compose environment; it registers, runs its pg_dump pre-command and backs up', async () => {
      await writeFile(path.join(volume('agent', '/backup'), 'hello.txt'), sample);
      const dumpFile = path.join(volume('agent', '/dumps'), 'cairn.sql');
      const composeServerUrl = serviceEnvironment(services.agent).SERVER_URL ?? '';
      const { env, command, cwd } = hostEnvironment(
        'agent',
        services.agent,
        images.get('agent')!,
        nodeDir,
        [
          [composeServerUrl, `http://127.0.0.1:${serverEnv.PORT}`],
          ...[...volumeDirs].filter(([key]) => key.startsWith('agent:')).map(([key, dir]): [string, string] => [key.slice('agent:'.length), dir]),
        ],
        {
          CLIENT_UI_HOST: '127.0.0.1',
          CLIENT_UI_PORT: String(await freePort()),
          AGENT_STATE_DIR: volume('agent', '/config'),
          // The documented central pre-command, set locally here: a plain pg_dump into /dumps.
          PRE_COMMANDS: `pg_dump --dbname=${database!.url} --format=plain --file=/dumps/cairn.sql`,
        },
      );
      for (const [name, value] of Object.entries(env)) {
        expect(value, `${name} still names a compose service`).not.toMatch(/\/\/(server|postgres|minio)[:/]/);
      }
      expect(env.SERVER_URL).toBe(`http://127.0.0.1:${serverEnv.PORT}`);
      expect(env.MONITORED_PATHS?.split(',')).toEqual([volume('agent', '/backup'), volume('agent', '/dumps')]);
      agentEnv = env;
      agent = startHostProcess(command, cwd, env);

      const clientName = agentEnv.CLIENT_NAME as string;
      const versions = await waitFor(
        'backed-up versions of hello.txt and the dump',
        async () => {
          const rows = await sql!<{ path: string; content_sha256: string }[]>`
            select p.path, encode(fv.content_sha256, 'hex') as content_sha256 from file_versions fv
            join client_paths p on p.id = fv.path_id join clients c on c.id = p.client_id
            where c.name = ${clientName} and fv.valid_to is null`;
          const hello = rows.find((r) => r.path.endsWith('/hello.txt'));
          const dump = rows.find((r) => r.path.endsWith('/cairn.sql'));
          return hello && dump ? { hello, dump } : undefined;
        },
        agent,
      );
      expect(versions.hello.content_sha256).toBe(createHash('sha256').update(sample).digest('hex'));
      // Configured from the environment, the agent still answers the image's HEALTHCHECK.
      expect(runHealthcheck('agent', env)).toBe(0);
      const dump = await readFile(dumpFile);
      expect(dump.toString('utf8')).toContain('PostgreSQL database dump');
      expect(versions.dump.content_sha256).toBe(createHash('sha256').update(dump).digest('hex'));

      // The bytes are in the bucket: hello.txt's content is one chunk (decision 91) inside a pack; a ranged GET of
      // its stored bytes there, decoded, hashes to it.
      const chunks = await sql!<{ sha256: string; pack: string; offset: string; length: number; codec: number; size: string }[]>`
        select encode(ch.sha256, 'hex') as sha256, encode(p.sha256, 'hex') as pack, ch.pack_offset as offset,
               ch.stored_length as length, ch.codec, ch.size
        from chunks ch join packs p on p.id = ch.pack_id
        where ch.sha256 = decode(${versions.hello.content_sha256}, 'hex')`;
      expect(chunks.length).toBe(1);
      const client = new S3Client({
        endpoint: s3!.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey },
      });
      try {
        const listed = await client.send(new ListObjectsV2Command({ Bucket: s3!.bucket }));
        const keys = (listed.Contents ?? []).map((object) => object.Key ?? '');
        const bytes: Buffer[] = [];
        for (const chunk of chunks) {
          const key = keys.find((k) => k.endsWith(chunk.pack));
          expect(key, `no pack ${chunk.pack} for chunk ${chunk.sha256} among ${keys.join(', ')}`).toBeDefined();
          const start = Number(chunk.offset);
          const range = `bytes=${start}-${start + chunk.length - 1}`;
          const object = await client.send(new GetObjectCommand({ Bucket: s3!.bucket, Key: key, Range: range }));
          const stored = Buffer.from(await object.Body!.transformToByteArray());
          const codec = codecOfId(chunk.codec);
          expect(codec).not.toBeNull();
          const body = await decodeChunk(codec!, stored, Number(chunk.size), await defaultZstdBackend());
          expect(createHash('sha256').update(body).digest('hex')).toBe(chunk.sha256);
          bytes.push(body);
        }
        expect(Buffer.concat(bytes).toString('utf8')).toBe(sample);
      } finally {
        client.destroy();
      }
    });
  });
});
