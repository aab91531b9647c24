/**
 * The compose files, .env.example and the Dockerfiles agree with the
 * variables the code actually reads (serverConfigVariables(),
 * agentConfigVariables()): nothing is set that no code reads, nothing the
 * code or compose requires is missing, every default written down is the
 * default that applies, and each Cairn service's resulting environment is
 * accepted by the real config loader.
 */
import { describe, expect, it } from 'vitest';
import { loadServerConfig, serverConfigVariables } from '../../server/src/config/server-config.ts';
import { agentConfigVariables, loadAgentConfig } from '../../client/src/config/agent-config.ts';
import {
  COMPOSE_FILES,
  DOCKERFILES,
  composeReferences,
  filledEnvExample,
  readCompose,
  readComposeTemplate,
  readEnvExample,
  readFinalStage,
  requiredVariables,
  serviceEnvironment,
  serviceRole,
  type Role,
} from './deploy-files.ts';

const CODE_VARIABLES: Record<Role, Set<string>> = {
  server: new Set(serverConfigVariables()),
  agent: new Set(agentConfigVariables()),
};

function loadConfig(role: Role, env: Record<string, string>): unknown {
  return role === 'server' ? loadServerConfig(env) : loadAgentConfig(env);
}

/** Read by node itself, not by Cairn's code: the compile cache's directory (decision 182). */
const NODE_VARIABLES = new Set(['NODE_COMPILE_CACHE']);

/** Variables the image sets itself (ENV of the final stage), minus the shell's PATH and node's own. */
function imageEnv(role: Role): Record<string, string> {
  const { PATH: _path, ...env } = readFinalStage(DOCKERFILES[role]).env;
  return Object.fromEntries(Object.entries(env).filter(([name]) => !NODE_VARIABLES.has(name)));
}

const cairnServices = COMPOSE_FILES.flatMap((file) =>
  Object.entries(readComposeTemplate(file).services).flatMap(([name, service]) => {
    const role = serviceRole(service);
    return role === undefined ? [] : [{ file, name, role, label: `${file} ${name}` }];
  }),
);

describe('code variables are known to the checks', () => {
  it('both config modules report what they read', () => {
    expect(CODE_VARIABLES.server).toContain('DATABASE_URL');
    expect(CODE_VARIABLES.agent).toContain('SERVER_URL');
  });
});

describe.each(Object.keys(DOCKERFILES) as Role[])('%s image environment', (role) => {
  it('sets only variables the code reads', () => {
    const unread = Object.keys(imageEnv(role)).filter((name) => !CODE_VARIABLES[role].has(name));
    expect(unread, `set by ${DOCKERFILES[role]} but read by no ${role} code`).toEqual([]);
  });
});

describe.each(cairnServices)('$label', ({ file, name, role }) => {
  // The agent needs ENROLLMENT_KEY or AGENT_USERNAME/AGENT_PASSWORD: a secret .env.example leaves empty, pasted from the dashboard.
  const filled = () => filledEnvExample(role === 'agent' ? { ENROLLMENT_KEY: 'cairn_enroll_sample' } : {});
  const template = readComposeTemplate(file).services[name]!;
  const templateEnv = serviceEnvironment(template);

  it('sets only variables the code reads', () => {
    const unread = Object.keys(templateEnv).filter((variable) => !CODE_VARIABLES[role].has(variable));
    expect(unread, `set in ${file} for ${name} but read by no ${role} code`).toEqual([]);
  });

  it('lets every variable the code reads be set (by the image or by compose)', () => {
    const provided = new Set([...Object.keys(imageEnv(role)), ...Object.keys(templateEnv)]);
    const unreachable = [...CODE_VARIABLES[role]].filter((variable) => !provided.has(variable));
    expect(unreachable, `read by the ${role} but neither ${DOCKERFILES[role]} nor ${file} passes it`).toEqual([]);
  });

  it('gives the real config loader an environment it accepts (nothing required is missing)', () => {
    const resolved = serviceEnvironment(readCompose(file, filled()).services[name]!);
    expect(() => loadConfig(role, { ...imageEnv(role), ...resolved })).not.toThrow();
  });

  it('documents the code default in .env.example for every setting that falls back to it', () => {
    const example = readEnvExample().values;
    const base = { ...imageEnv(role), ...serviceEnvironment(readCompose(file, filled()).services[name]!) };
    for (const [variable, raw] of Object.entries(templateEnv)) {
      const fallsBack = /^\$\{([A-Z0-9_]+):-\}$/.exec(raw);
      // A credential has no default to document: without one the agent refuses to start, naming it.
      if (!fallsBack?.[1] || variable === 'ENROLLMENT_KEY') continue;
      const exampleValue = example.get(fallsBack[1]) ?? '';
      expect(
        loadConfig(role, { ...base, [variable]: exampleValue }),
        `.env.example ${fallsBack[1]}=${exampleValue} differs from the ${role}'s built-in default for ${variable}`,
      ).toEqual(loadConfig(role, { ...base, [variable]: '' }));
    }
  });
});

describe('.env.example', () => {
  const example = readEnvExample();
  const references = COMPOSE_FILES.flatMap((file) => composeReferences(file).map((reference) => ({ file, ...reference })));
  const referenced = new Set(references.map((r) => r.name));

  it('mentions every variable the server and the agent read', () => {
    const all = new Set([...CODE_VARIABLES.server, ...CODE_VARIABLES.agent]);
    const missing = [...all].filter((variable) => !new RegExp(`\\b${variable}\\b`).test(example.text));
    expect(missing).toEqual([]);
  });

  it('sets only variables some compose file uses', () => {
    const unused = [...example.values.keys()].filter((variable) => !referenced.has(variable));
    expect(unused).toEqual([]);
  });

  it('holds every variable the compose files use', () => {
    const missing = references.filter((r) => !example.values.has(r.name)).map((r) => `${r.file}: ${r.name}`);
    expect([...new Set(missing)]).toEqual([]);
  });

  it('gives each variable a one-line comment', () => {
    const lines = example.text.split('\n');
    const uncommented = lines
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => /^[A-Z0-9_]+=/.test(line))
      .filter(({ index }) => {
        // A comment right above, or above a group of assignments that share it.
        let above = index - 1;
        while (above >= 0 && /^[A-Z0-9_]+=/.test(lines[above] ?? '')) above--;
        return !(lines[above] ?? '').startsWith('# ');
      })
      .map(({ line }) => line);
    expect(uncommented).toEqual([]);
  });

  it('leaves every required value empty for the person to fill (no shipped secrets)', () => {
    const required = requiredVariables();
    expect(required.size).toBeGreaterThan(0);
    const prefilled = [...required].filter((variable) => (example.values.get(variable) ?? '') !== '');
    expect(prefilled).toEqual([]);
    for (const secret of ['POSTGRES_PASSWORD', 'MINIO_ROOT_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'ADMIN_PASSWORD', 'SECRET_KEY']) {
      expect(required, `${secret} must be required with \${${secret}:?message}`).toContain(secret);
    }
    expect(example.text).not.toMatch(/change-?me|changeme|password123|minioadmin/i);
  });

  it('matches the default compose substitutes for it', () => {
    const mismatched = references
      .filter((r) => r.operator === ':-' && r.argument !== '' && !requiredVariables().has(r.name))
      .filter((r) => example.values.get(r.name) !== r.argument)
      .map((r) => `${r.file}: \${${r.name}:-${r.argument}} but .env.example has ${r.name}=${example.values.get(r.name) ?? '(missing)'}`);
    expect(mismatched).toEqual([]);
  });

  it('is referenced by compose only with an explicit default or requirement', () => {
    const bare = references.filter((r) => r.operator !== ':-' && r.operator !== ':?').map((r) => `${r.file}: ${r.name}`);
    expect(bare).toEqual([]);
  });
});
