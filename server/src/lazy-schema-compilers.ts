/**
 * Fastify's own schema compilers (@fastify/ajv-compiler for validation,
 * @fastify/fast-json-stringify-compiler for responses), with the same
 * options, but each route's validator and serializer compiled on its first
 * use instead of at start-up (decision 170). Compiling all ~200 route
 * schemas took some 600 ms of every start (ajv 410 ms, fast-json-stringify
 * 196 ms in a CPU profile), most of it for routes a given process may never
 * serve. A schema that cannot compile now fails its route's first request
 * (a 500, logged with the route) instead of the start-up; every route runs
 * in the tests.
 *
 * Fastify counts a compilers factory of our own as a custom validator,
 * which changes one thing: header schemas are not lower-cased for us. No
 * route declares one, and one that did would fail the start-up (here).
 */
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

const require = createRequire(import.meta.url);

type Compiled = ((data: unknown) => unknown) & { errors?: unknown };
type RouteCompiler = (route: unknown) => Compiled;
type CompilerFactory = (externalSchemas: unknown, options: unknown) => RouteCompiler;

/** `compile(route)` runs at the first call of what it returns, once; `errors` (ajv's) is passed through. */
function lazily(compile: () => Compiled): Compiled {
  let compiled: Compiled | undefined;
  const first = function (this: unknown, data: unknown): unknown {
    compiled ??= compile();
    const result = compiled.call(this, data);
    first.errors = compiled.errors;
    return result;
  } as Compiled;
  return first;
}

function lazyFactory(factory: CompilerFactory): CompilerFactory {
  return (externalSchemas, options) => {
    let compiler: RouteCompiler | undefined;
    return (route) => {
      if ((route as { httpPart?: unknown }).httpPart === 'headers') {
        throw new Error('a header schema would not be lower-cased with the lazy schema compilers (lazy-schema-compilers.ts): validate headers in the handler');
      }
      return lazily(() => (compiler ??= factory(externalSchemas, options))(route));
    };
  };
}

/** The `schemaController.compilersFactory` option of Fastify. */
export function lazySchemaCompilers(): CompilersFactory {
  const ajvCompiler = require('@fastify/ajv-compiler') as () => CompilerFactory;
  const serializerSelector = require('@fastify/fast-json-stringify-compiler') as () => CompilerFactory;
  // The two packages' own types are Fastify's; these loose ones only say what is passed through unchanged.
  return { buildValidator: lazyFactory(ajvCompiler()), buildSerializer: lazyFactory(serializerSelector()) } as unknown as CompilersFactory;
}
