import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { AgentRuntime } from '../agent/agent-runtime.ts';
import type { Logger } from '../logger.ts';
import { isCrossOriginRequest } from './setup-form.ts';
import { setupPageRoutes } from './setup-page.routes.ts';

const VIEWS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '../views');
const ASSETS: Record<string, string> = {
  'agent.css': 'text/css; charset=utf-8',
  'status.js': 'text/javascript; charset=utf-8',
  'logo.svg': 'image/svg+xml',
};

/**
 * The setup/status page. Local by nature, so no sessions: cross-origin POSTs
 * are refused (Sec-Fetch-Site / Origin), every response forbids framing and
 * loads nothing from elsewhere, and the assets are served from this process.
 */
export async function buildSetupServer(runtime: AgentRuntime, log: Logger): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: log.child({ module: 'setup-page' }, { level: 'warn' }) as FastifyBaseLogger, bodyLimit: 64 * 1024 });
  await app.register(formbody);
  await app.register(view, { engine: { eta: new Eta({ autoEscape: true }) }, templates: VIEWS_DIR, production: false });

  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD' && isCrossOriginRequest(request.headers)) {
      request.log.warn({ origin: request.headers.origin, site: request.headers['sec-fetch-site'] }, 'refused a cross-origin request');
      return reply.status(403).type('text/plain').send('Cross-origin requests are not allowed.');
    }
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    reply.header('x-frame-options', 'DENY');
    reply.header('x-content-type-options', 'nosniff');
    // `no-referrer` would make browsers send `Origin: null` on our own form posts.
    reply.header('referrer-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
    return payload;
  });

  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const type = ASSETS[request.params.name];
    if (type === undefined) return reply.status(404).send('not found');
    return reply.type(type).send(await readFile(path.join(VIEWS_DIR, 'assets', request.params.name)));
  });

  setupPageRoutes(app, runtime);
  return app;
}
