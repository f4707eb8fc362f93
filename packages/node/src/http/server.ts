/**
 * The fastify instance with every limit explicit (fastify and Node default to unlimited request
 * and connection times) and one error path: problem+json with a protocol code.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { ProtocolError } from '@passerelle/protocol';
import type { ResolvedConfig } from '../config.js';
import { asProtocolError, PROBLEM_CONTENT_TYPE, problemFrom } from './problem.js';

export function sendProblem(reply: FastifyReply, error: ProtocolError, options: { status?: number; receipt?: string } = {}): FastifyReply {
  const problem = problemFrom(error, options);
  if (error.code === 'RATE_LIMITED' && typeof error.details?.retryAfterSeconds === 'number') {
    reply.header('retry-after', String(error.details.retryAfterSeconds));
  }
  return reply.code(problem.status).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/** fastify's own errors (body too large, bad content type, unparseable JSON) as protocol codes. */
function fromFastifyError(error: FastifyError): { error: ProtocolError; status?: number } {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { error: new ProtocolError('TOO_LARGE', 'The request body is too large') };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { error: new ProtocolError('MALFORMED', 'Unsupported content type'), status: 415 };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: new ProtocolError('MALFORMED', 'The body is not valid JSON') };
    default:
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
        return { error: new ProtocolError('MALFORMED', 'The request is malformed') };
      }
      return { error: asProtocolError(error) };
  }
}

export function createServer(config: ResolvedConfig, logger: Logger): FastifyInstance {
  const limits = config.limits;
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: limits.apiBodyLimit,
    connectionTimeout: limits.connectionTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    forceCloseConnections: true,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
  });
  // Node's own bound on receiving the request headers (slowloris); must not exceed requestTimeout.
  app.server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs || limits.headersTimeoutMs);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const mapped = error instanceof ProtocolError ? { error } : fromFastifyError(error);
    if (mapped.error.code === 'INTERNAL') request.log.error({ err: error }, 'unexpected error');
    return sendProblem(reply, mapped.error, mapped.status !== undefined ? { status: mapped.status } : {});
  });
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, new ProtocolError('NOT_FOUND')));
  // The pino Logger type is wider than FastifyBaseLogger in its generics only.
  return app as unknown as FastifyInstance;
}
