/**
 * The server's V8 flags (server/src/node-flags.ts, decision 178) are on
 * node's command line however it is started: a flag missing in one launcher
 * would make its memory differ from what the bench measures. So are the
 * agent's (client/src/node-flags.ts, decision 203).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../client/src/node-flags.ts';
import { SERVER_NODE_FLAGS } from '../../server/src/node-flags.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

const read = (file: string) => readFileSync(path.join(REPO_ROOT, file), 'utf8');

describe("the server's node flags", () => {
  it('are in package.json, the Dockerfile and npm start', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.server).toBe(`node ${SERVER_NODE_FLAGS.join(' ')} --import tsx server/src/main.ts`);
    const cmd = read('server/Dockerfile').split('\n').find((line) => line.startsWith('CMD '));
    expect(cmd).toBe(`CMD ${JSON.stringify(['node', ...SERVER_NODE_FLAGS, 'src/main.ts'])}`.replaceAll('","', '", "'));
    expect(read('scripts/start.ts')).toMatch(/launch\('server'[^;]*SERVER_NODE_FLAGS\);/s);
  });
});

describe("the agent's node flags", () => {
  it('are in package.json, the Dockerfile and npm start', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.agent).toBe(`node ${AGENT_NODE_FLAGS.join(' ')} --import tsx client/src/main.ts`);
    const cmd = read('client/Dockerfile').split('\n').find((line) => line.startsWith('CMD '));
    expect(cmd).toBe(`CMD ${JSON.stringify(['node', ...AGENT_NODE_FLAGS, 'src/main.ts'])}`.replaceAll('","', '", "'));
    expect(read('scripts/start.ts')).toMatch(/launch\('agent'[^;]*AGENT_NODE_FLAGS\);/s);
  });
});
