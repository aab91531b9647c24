/**
 * The server's V8 flags (server/src/node-flags.ts, decision 178) and the
 * agent's (client/src/node-flags.ts, decision 203) are on node's command line
 * however each is started: a flag missing in one launcher would make its
 * memory differ from what the bench measures.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../client/src/node-flags.ts';
import { SERVER_NODE_FLAGS } from '../../server/src/node-flags.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

const read = (file: string) => readFileSync(path.join(REPO_ROOT, file), 'utf8');

describe.each([
  { name: 'server', flags: SERVER_NODE_FLAGS, constant: 'SERVER_NODE_FLAGS', dir: 'server' },
  { name: 'agent', flags: AGENT_NODE_FLAGS, constant: 'AGENT_NODE_FLAGS', dir: 'client' },
])("the $name's node flags", ({ name, flags, constant, dir }) => {
  it('are in package.json, the Dockerfile and npm start', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts[name]).toBe(`node ${flags.join(' ')} --import tsx ${dir}/src/main.ts`);
    const cmd = read(`${dir}/Dockerfile`).split('\n').find((line) => line.startsWith('CMD '));
    expect(cmd).toBe(`CMD ${JSON.stringify(['node', ...flags, 'src/main.ts'])}`.replaceAll('","', '", "'));
    expect(read('scripts/start.ts')).toMatch(new RegExp(`launch\\('${name}'[^;]*${constant}\\);`, 's'));
  });
});
