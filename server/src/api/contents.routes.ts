import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ContentParams, ErrorBody, isSha256, MissingRequest, MissingResponse, UploadQuery, UploadResponse, type UploadResult } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { getRunOfClient } from '../services/backup-repository.ts';
import {
  findMissingContents,
  openContentForUser,
  storeUploadedContents,
  type IncomingContent,
} from '../services/content-store.service.ts';
import { agentOf, BEARER } from './agent-auth.ts';

/** Content: which are missing for this user, upload (multipart), download. */
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
          yield { sha256: part.fieldname, source: part.file };
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

  app.get(
    '/contents/:sha256',
    {
      schema: {
        tags: ['agent'],
        summary: "Download a content's bytes (404 unless this user holds it)",
        security: BEARER,
        params: ContentParams,
        produces: ['application/octet-stream'],
        response: { 200: Type.String({ format: 'binary' }), ...errors, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const content = await openContentForUser(ctx, agentOf(request).userId, request.params.sha256);
      if (!content) throw new NotFoundError('no such content');
      // A stream bypasses the serializer; the 200 schema above only documents the binary body for OpenAPI.
      return reply.type('application/octet-stream').header('content-length', content.size).send(content.stream as unknown as string);
    },
  );
};
