/**
 * The fastify instance with every limit explicit (fastify and Node default to unlimited request
 * and connection times) and one error path: problem+json with a protocol code.
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { ProtocolError } from '@passerelle/protocol';
import type { ResolvedConfig } from '../config.js';
import { asProtocolError, PROBLEM_CONTENT_TYPE, problemFrom } from './problem.js';

/** A refused request's unread body that Node may discard to keep the connection: small ones only. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

/**
 * Refused before its body was read (size, type, unknown sender, no token...): Node would read and
 * discard the rest of the body to keep the connection alive, however large the declared length
 * or endless the chunked stream. Such connections are closed once answered instead; a small
 * declared body is drained, so that a peer's connection survives an ordinary refusal.
 */
function unreadBodyTooLong(raw: IncomingMessage): boolean {
  if (raw.complete) return false;
  const declared = raw.headers['content-length'];
  return declared === undefined || !(Number(declared) <= DRAIN_LIMIT_BYTES);
}

/** Refusals made once at start-up (staticRefusal), with their serialised documents by status. */
const staticBodies = new WeakMap<ProtocolError, Map<number | undefined, { status: number; body: string }>>();

/**
 * A refusal made once and answered many times (the edge gate's header-decided refusals): its
 * problem document is serialised on first use and kept. Never throw it: it is shared.
 */
export function staticRefusal(code: ProtocolError['code'], message?: string): ProtocolError {
  const error = new ProtocolError(code, message);
  staticBodies.set(error, new Map());
  return error;
}

function problemDocument(error: ProtocolError, options: { status?: number; receipt?: string }): { status: number; body: string } {
  const cache = options.receipt === undefined ? staticBodies.get(error) : undefined;
  const cached = cache?.get(options.status);
  if (cached) return cached;
  const problem = problemFrom(error, options);
  const document = { status: problem.status, body: JSON.stringify(problem) };
  cache?.set(options.status, document);
  return document;
}

/** Status, extra headers and body of a refusal: one answer whether fastify or the edge gate sends it. */
function problemAnswer(raw: IncomingMessage, error: ProtocolError, options: { status?: number; receipt?: string }) {
  const { status, body } = problemDocument(error, options);
  const headers: Record<string, string> = {};
  if (unreadBodyTooLong(raw)) headers.connection = 'close';
  if (error.code === 'RATE_LIMITED' && typeof error.details?.retryAfterSeconds === 'number') {
    headers['retry-after'] = String(error.details.retryAfterSeconds);
  }
  return { status, headers, body };
}

export function sendProblem(reply: FastifyReply, error: ProtocolError, options: { status?: number; receipt?: string } = {}): FastifyReply {
  const { status, headers, body } = problemAnswer(reply.request.raw, error, options);
  return reply.code(status).headers(headers).header('content-type', PROBLEM_CONTENT_TYPE).send(body);
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

/**
 * Requests Node's HTTP parser refuses before any route sees them (ambiguous framing such as both
 * Content-Length and Transfer-Encoding, oversized headers, a client too slow to finish): answered
 * with a problem document like every other refusal, then the connection is closed, since what
 * follows on it cannot be framed safely.
 */
function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [refusal, status] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [new ProtocolError('MALFORMED', 'The request was not received in time'), 408]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [new ProtocolError('TOO_LARGE', 'The request headers are too large'), 431]
        : [new ProtocolError('MALFORMED', 'The request is not valid HTTP/1.1'), 400];
  const body = JSON.stringify(problemFrom(refusal, { status }));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * A check run on each request before fastify sees it: returns true when it has answered the request
 * itself. The peer API uses it to refuse unauthenticated requests (the bulk of a flood) without
 * fastify's routing, hooks and reply pipeline, which cost more than the checks themselves.
 */
export type EdgeGate = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Answers a refused request at the edge, with the same document and headers as sendProblem. */
export function writeProblem(req: IncomingMessage, res: ServerResponse, error: ProtocolError, options: { status?: number } = {}): void {
  const { status, headers, body } = problemAnswer(req, error, options);
  // The charset fastify adds to a string payload, so that both paths answer byte for byte alike.
  res.writeHead(status, { ...headers, 'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

export function createServer(config: ResolvedConfig, logger: Logger, gates: EdgeGate[] = []): FastifyInstance {
  const limits = config.limits;
  // Node enforces headersTimeout and requestTimeout by sweeping connections on this interval
  // (30 s by default), so a slow client would otherwise be cut off up to 30 s after its deadline.
  const shortest = Math.min(...[limits.headersTimeoutMs, limits.requestTimeoutMs].filter((ms) => ms > 0), 30_000);
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: limits.apiBodyLimit,
    connectionTimeout: limits.connectionTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    forceCloseConnections: true,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
    clientErrorHandler,
    // fastify's own server set-up (http/server.js getServerInstance), with the edge gates in front.
    serverFactory: (handler) => {
      const server = createHttpServer({ connectionsCheckingInterval: Math.max(100, Math.floor(shortest / 4)) }, (req, res) => {
        for (const gate of gates) if (gate(req, res)) return;
        handler(req, res);
      });
      server.keepAliveTimeout = limits.keepAliveTimeoutMs;
      server.requestTimeout = limits.requestTimeoutMs;
      server.setTimeout(limits.connectionTimeoutMs);
      return server;
    },
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
