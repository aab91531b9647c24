import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { lazySchemaCompilers } from '../../src/lazy-schema-compilers.ts';

describe('lazy schema compilers (decision 170)', () => {
  const routeApp = () => Fastify({ schemaController: { compilersFactory: lazySchemaCompilers() } });

  it('validate and serialize exactly as Fastify does: 400 with ajv\'s message, unknown response fields dropped', async () => {
    const app = routeApp();
    app.post(
      '/things',
      {
        schema: {
          body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 2 } }, additionalProperties: false },
          response: { 200: { type: 'object', properties: { name: { type: 'string' } } } },
        },
      },
      async (request) => ({ ...(request.body as object), secret: 'not in the schema' }),
    );
    const bad = await app.inject({ method: 'POST', url: '/things', payload: { name: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe('body/name must NOT have fewer than 2 characters');
    const good = await app.inject({ method: 'POST', url: '/things', payload: { name: 'xy' } });
    expect(good.statusCode).toBe(200);
    expect(good.json()).toEqual({ name: 'xy' });
    // The same validator a second time (compiled once, errors of this call).
    expect((await app.inject({ method: 'POST', url: '/things', payload: {} })).json().message).toBe("body must have required property 'name'");
    await app.close();
  });

  it('refuse a header schema when the route is registered, not at its first request', async () => {
    const app = routeApp();
    app.get('/h', { schema: { headers: { type: 'object', properties: { 'X-Thing': { type: 'string' } } } } }, async () => 'ok');
    await expect(app.ready()).rejects.toThrow(/header schema/);
  });
});
