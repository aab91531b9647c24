import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorBody, OkResponse, ProgressRequest } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { recordLiveProgress } from './live-progress.ts';
import { agentOf, BEARER } from '../api/agent-auth.ts';
import type { LiveHub } from './live-hub.ts';

/** A comment line this often keeps proxies and NAT tables from dropping an idle stream. */
export const KEEPALIVE_MS = 15_000;

/** GET /events (the agent's live channel, server-sent events) and POST /progress; mounted inside the bearer-token scope. */
export const liveRoutes: FastifyPluginAsync<{ ctx: AppContext; hub: LiveHub }> = async (plugin, { ctx, hub }) => {
  const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/events',
    {
      schema: {
        tags: ['agent'],
        summary: 'Live channel (text/event-stream): hello, then run / config / revoked as they happen; the agent pings on each',
        security: BEARER,
        response: { 401: ErrorBody },
      },
    },
    async (request, reply) => {
      const { clientId } = agentOf(request);
      const unsubscribe = await hub.subscribe(clientId, (event) => {
        // Shutting down: drop the socket rather than wait for the agent to close its side; it reconnects.
        if (event === 'closing') return void (end(), res.destroy());
        send(event);
        if (event === 'revoked') end();
      });
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        // Not reused after the stream ends: closing frees the socket at once, and a shutting-down server need not wait out keep-alive.
        connection: 'close',
      });
      let open = true;
      const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
      function send(event: string): void {
        if (open) res.write(`event: ${event}\ndata: {}\n\n`);
      }
      function end(): void {
        if (!open) return;
        open = false;
        clearInterval(keepalive);
        unsubscribe();
        res.end();
      }
      res.on('close', end);
      send('hello');
      request.log.debug({ clientId }, 'live channel open');
    },
  );

  app.post(
    '/progress',
    {
      schema: {
        tags: ['agent'],
        summary: "The running backup's progress (at most once a second), shown live on the dashboard",
        security: BEARER,
        body: ProgressRequest,
        response: { 200: OkResponse, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => {
      const { clientId } = agentOf(request);
      await recordLiveProgress(ctx.database.db, clientId, request.body);
      return { ok: true };
    },
  );
};
