import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AssembleFormatError,
  AssembleResponse,
  ASSEMBLE_CONTENT_TYPE,
  ContentParams,
  decodeAssembleRecords,
  ErrorBody,
  isSha256,
  similarHintOf,
  MissingRequest,
  MissingResponse,
  OkResponse,
  STORED_CONTENT_DAMAGED,
  UploadQuery,
  UploadResponse,
  type UploadResult,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { getRunOfClient } from '../services/backup-repository.ts';
import {
  assembleContents,
  findMissingContents,
  openContentForUser,
  storeUploadedContents,
  type IncomingContent,
} from '../services/content-store.service.ts';
import { agentOf, BEARER } from './agent-auth.ts';

/** Content: which are missing for this user, upload (multipart), download, verify. */
export const contentRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext }> = async (app, { ctx }) => {
  const { maxParts, maxPartBytes } = ctx.config.limits;
  await app.register(multipart, {
    limits: {
      // One byte over the part limit reaches the store, which then refuses the part with a 413 (busboy would only truncate it).
      fileSize: maxPartBytes + 1,
      files: maxParts,
      parts: maxParts,
      // Content travels only as file parts; text fields would be buffered in memory, so none is accepted.
      fields: 0,
      fieldNameSize: 100,
      headerPairs: 20,
    },
  });
  const errors = { 400: ErrorBody, 401: ErrorBody };

  app.post(
    '/contents/missing',
    {
      schema: {
        tags: ['agent'],
        summary: 'Of these content hashes, the ones this user has not uploaded',
        security: BEARER,
        body: MissingRequest,
        response: { 200: MissingResponse, ...errors },
      },
    },
    async (request) => ({ missing: await findMissingContents(ctx, agentOf(request).userId, request.body.hashes) }),
  );

  app.post(
    '/contents',
    {
      schema: {
        tags: ['agent'],
        summary: "Upload contents: multipart/form-data, one file part per content named by its SHA-256",
        description:
          'Each part is hashed while it streams; a mismatch is a 400 and keeps nothing of that part. ' +
          'Parts before a failing one are committed. Bytes the server already has are hashed and discarded.',
        security: BEARER,
        consumes: ['multipart/form-data'],
        querystring: UploadQuery,
        response: { 200: UploadResponse, ...errors, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 507: ErrorBody },
      },
    },
    async (request, reply) => {
      const agent = agentOf(request);
      if (!request.isMultipart()) throw new BadRequestError('body: expected multipart/form-data with one file part per content');
      const runId = request.query.runId ?? null;
      if (runId !== null) await getRunOfClient(ctx.database.db, agent.clientId, runId);
      // Validated one by one as they stream in; the service commits them in batches.
      async function* contentParts(): AsyncGenerator<IncomingContent> {
        for await (const part of request.parts()) {
          if (part.type !== 'file') throw new BadRequestError(`part "${part.fieldname}": must be a file part`);
          if (!isSha256(part.fieldname)) {
            throw new BadRequestError(`part "${part.fieldname.slice(0, 100)}": the field name must be the content's lower-case hex SHA-256`);
          }
          // The filename may carry a hint of the content these bytes resemble (decision 171); a bad one is ignored.
          const similar = similarHintOf(part.fieldname, part.filename);
          yield similar ? { sha256: part.fieldname, source: part.file, similar } : { sha256: part.fieldname, source: part.file };
        }
      }
      let results: UploadResult[];
      try {
        results = await storeUploadedContents(ctx, { userId: agent.userId, runId, maxBytes: maxPartBytes }, contentParts());
      } catch (error) {
        // The rest of the body is not read (it may be gigabytes): the connection cannot carry another
        // request, so say so and let it close after the answer instead of leaving the client out of step.
        if (!request.raw.complete) reply.header('connection', 'close');
        throw error;
      }
      return { results };
    },
  );

  // The assemble body is read as a stream of binary records (decision 125), never buffered whole.
  app.addContentTypeParser(ASSEMBLE_CONTENT_TYPE, (_request, payload, done) => done(null, payload));

  app.post(
    '/contents/assemble',
    {
      schema: {
        tags: ['agent'],
        summary: 'Commit contents of several chunks from their ordered chunk lists',
        description:
          'Body: application/octet-stream, records of (32-byte content SHA-256, 8-byte size, 4-byte chunk count, the ' +
          'chunks\' 32-byte SHA-256s), as in shared/src/assemble-format.ts. Every chunk must be one this user holds; ' +
          'the server reads the chunks back and checks they hash to the content and add up to its size. Chunks the ' +
          'user does not hold are a 409 naming them (`missing`), after the other contents are committed.',
        security: BEARER,
        consumes: [ASSEMBLE_CONTENT_TYPE],
        response: { 200: AssembleResponse, ...errors, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      const agent = agentOf(request);
      const body = request.body as NodeJS.ReadableStream | undefined;
      if (!body || typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] !== 'function') {
        throw new BadRequestError(`body: expected ${ASSEMBLE_CONTENT_TYPE} with content records`);
      }
      try {
        const results = await assembleContents(ctx, agent.userId, decodeAssembleRecords(body as AsyncIterable<Buffer>));
        return { results };
      } catch (error) {
        if (!request.raw.complete) reply.header('connection', 'close');
        if (error instanceof AssembleFormatError) throw new BadRequestError(`body: ${error.message}`);
        throw error;
      }
    },
  );

  app.get(
    '/contents/:sha256',
    {
      schema: {
        tags: ['agent'],
        summary: "Download a content's bytes (404 unless this user holds it)",
        description:
          'The bytes are checked against the hash on the way out. Damage found before the headers is a 500 ' +
          `(error ${STORED_CONTENT_DAMAGED}); found later, the transfer is cut off before its end.`,
        security: BEARER,
        params: ContentParams,
        produces: ['application/octet-stream'],
        response: { 200: Type.String({ format: 'binary' }), ...errors, 404: ErrorBody, 500: ErrorBody },
      },
    },
    async (request, reply) => {
      const agent = agentOf(request);
      const content = await openContentForUser(ctx, agent.userId, request.params.sha256, { clientId: agent.clientId, log: request.log });
      if (!content) throw new NotFoundError('no such content');
      // A stream bypasses the serializer; the 200 schema above only documents the binary body for OpenAPI.
      return reply.type('application/octet-stream').header('content-length', content.size).send(content.stream as unknown as string);
    },
  );

  app.get(
    '/contents/:sha256/verify',
    {
      schema: {
        tags: ['agent'],
        summary: "Read a content's stored bytes whole and check them against its hash",
        description: `After a download that broke off, this tells damage (500, error ${STORED_CONTENT_DAMAGED}) from network trouble (200).`,
        security: BEARER,
        params: ContentParams,
        response: { 200: OkResponse, ...errors, 404: ErrorBody, 500: ErrorBody },
      },
    },
    async (request) => {
      const agent = agentOf(request);
      const content = await openContentForUser(ctx, agent.userId, request.params.sha256, { clientId: agent.clientId, log: request.log });
      if (!content) throw new NotFoundError('no such content');
      await pipeline(content.stream, new Writable({ write: (_chunk, _encoding, done) => done() }));
      return { ok: true };
    },
  );
};
