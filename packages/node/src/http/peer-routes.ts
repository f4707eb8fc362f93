/**
 * The peer API (spec/node.md §2). POST /inbox checks, cheapest first: content type, signature
 * headers present, keyid of a pinned peer (an unknown sender costs no outbound request), the
 * peer's rate limit, body size — all before the body is read — then Content-Digest and the HTTP
 * message signature, and only then decryption and the acceptance path.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProtocolError, sha256b64uSync } from '@passerelle/protocol';
import type { ResolvedConfig } from '../config.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { acceptInbound, MessageRejected, type AcceptDeps } from '../inbox/accept-inbound.js';
import { JOSE_CONTENT_TYPE, SENDER_HEADER } from '../net/peer-client.js';
import { NODE_DOCUMENT_PATH } from '../trust/document-fetcher.js';
import type { TrustStore } from '../trust/trust-store.js';
import { verifyRequest } from './message-signatures.js';
import { sendProblem, staticRefusal, writeProblem, type EdgeGate } from './server.js';
import { claimedKeyid } from './signature-keyid.js';
import type { TokenBuckets } from './token-bucket.js';

export const INBOX_PATH = '/inbox';

export interface PeerRouteDeps {
  config: ResolvedConfig;
  identity: NodeIdentity;
  trust: TrustStore;
  buckets: TokenBuckets;
  accept: AcceptDeps;
  now: () => Date;
}

declare module 'fastify' {
  interface FastifyRequest {
    peerId?: string;
  }
}

function mediaType(value: string | undefined): string {
  return (value ?? '').split(';')[0]!.trim().toLowerCase();
}

const ASCII = /^[\x21-\x7e]*$/;

type EdgeVerdict = { refuse: ProtocolError; status?: number } | { peer: string } | { refresh: string; keyid: string };

/**
 * The refusals decided from the headers alone, made once: most requests of a flood end in one of
 * them, and an Error per request (with its stack trace) would be the bulk of their cost here.
 * They are only ever answered, never thrown, so sharing them is safe; writeProblem keeps their
 * serialised documents (server.ts, staticRefusal).
 */
const REFUSALS = {
  wrongType: { refuse: staticRefusal('WRONG_TYPE', `POST ${INBOX_PATH} takes ${JOSE_CONTENT_TYPE}`), status: 415 },
  tooLarge: { refuse: staticRefusal('TOO_LARGE') },
  unsigned: { refuse: staticRefusal('REQUEST_UNAUTHENTICATED', 'Signature, Signature-Input and Content-Digest are required') },
  unauthenticated: { refuse: staticRefusal('REQUEST_UNAUTHENTICATED') },
  peerUnknown: { refuse: staticRefusal('PEER_UNKNOWN') },
} as const satisfies Record<string, EdgeVerdict>;

/**
 * The checks of POST /inbox that need neither the body nor any cryptography, cheapest first. A
 * pinned peer signing with a key we do not know yet asks for a refresh of its document (async, so
 * left to the route hook).
 */
function edgeCheck(deps: PeerRouteDeps, headers: IncomingHttpHeaders): EdgeVerdict {
  if (mediaType(headers['content-type']) !== JOSE_CONTENT_TYPE) return REFUSALS.wrongType;
  const length = Number(headers['content-length'] ?? '0');
  if (Number.isFinite(length) && length > deps.config.limits.inboxBodyLimit) return REFUSALS.tooLarge;
  if (headers['signature'] === undefined || headers['content-digest'] === undefined) return REFUSALS.unsigned;
  const keyid = claimedKeyid(headers['signature-input']);
  if (keyid === undefined) return REFUSALS.unauthenticated;
  const peer = deps.trust.peerForKeyid(keyid);
  if (peer === undefined) {
    const hint = headers[SENDER_HEADER];
    const claimed = typeof hint === 'string' ? hint : undefined;
    if (claimed === undefined || !deps.trust.isPinned(claimed)) return claimed === undefined ? REFUSALS.unauthenticated : REFUSALS.peerUnknown;
    return { refresh: claimed, keyid };
  }
  return allowance(deps, peer);
}

function allowance(deps: PeerRouteDeps, peer: string): EdgeVerdict {
  // Checked here, before any cryptography, but only charged once the request is authenticated
  // (below): the kids in a node document are public, and requests merely claiming a peer's
  // kid must not use up that peer's allowance and lock the real peer out.
  const allowed = deps.buckets.peek(peer);
  if (!allowed.allowed) return { refuse: new ProtocolError('RATE_LIMITED', undefined, { retryAfterSeconds: allowed.retryAfterSeconds }) };
  return { peer };
}

/** Verdicts of requests the edge gate let through, so that the route does not decide them again. */
const passedAtEdge = new WeakMap<IncomingMessage, EdgeVerdict>();

/**
 * The edge gate (server.ts) for POST /inbox: refusals decided from the headers alone are answered
 * before fastify sees the request; everything else goes on to the route.
 */
export function inboxEdgeGate(deps: PeerRouteDeps): EdgeGate {
  return (req, res) => {
    if (req.method !== 'POST' || req.url !== INBOX_PATH) return false;
    const verdict = edgeCheck(deps, req.headers);
    if (!('refuse' in verdict)) {
      passedAtEdge.set(req, verdict);
      return false;
    }
    writeProblem(req, res, verdict.refuse, verdict.status !== undefined ? { status: verdict.status } : {});
    return true;
  };
}

export function registerPeerRoutes(app: FastifyInstance, deps: PeerRouteDeps): void {
  app.get(NODE_DOCUMENT_PATH, async (_request, reply) => {
    return reply.header('content-type', 'application/json').header('cache-control', 'max-age=300').send(JSON.stringify(deps.identity.documentJws));
  });

  app.addContentTypeParser(JOSE_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: deps.config.limits.inboxBodyLimit }, (_req, body, done) => {
    done(null, body);
  });

  app.post(
    INBOX_PATH,
    {
      bodyLimit: deps.config.limits.inboxBodyLimit,
      // The edge gate's verdict, or the same checks for requests that reach fastify another way (a
      // URL with a query string); and the refresh of a rotated peer's document.
      onRequest: async (request, reply) => {
        let verdict = passedAtEdge.get(request.raw) ?? edgeCheck(deps, request.headers);
        if ('refresh' in verdict) {
          // A pinned peer signing with a key we do not know yet has probably rotated: refresh its
          // document (at most once per interval per peer) and look again.
          await deps.trust.refresh(verdict.refresh, { rateLimited: true }).catch(() => undefined);
          const peer = deps.trust.peerForKeyid(verdict.keyid);
          verdict = peer === verdict.refresh ? allowance(deps, peer) : REFUSALS.unauthenticated;
        }
        if ('refuse' in verdict) return sendProblem(reply, verdict.refuse, verdict.status !== undefined ? { status: verdict.status } : {});
        if ('peer' in verdict) request.peerId = verdict.peer;
      },
    },
    async (request: FastifyRequest, reply) => {
      const peer = request.peerId!;
      const body = request.body;
      if (!(body instanceof Buffer) || body.length === 0) return sendProblem(reply, new ProtocolError('MALFORMED', 'Empty body'));
      const now = deps.now();
      try {
        await verifyRequest({
          method: request.method,
          url: `${deps.config.id}${request.url}`,
          headers: request.headers,
          resolveKey: (kid) => (deps.trust.peerForKeyid(kid) === peer ? deps.trust.signingKeyWithRefresh(peer, kid, now) : undefined),
          body,
          now: Math.floor(now.getTime() / 1000),
          maxSkewSeconds: deps.config.limits.maxClockSkewSeconds,
        });
      } catch (e) {
        const error = e instanceof ProtocolError ? e : new ProtocolError('REQUEST_UNAUTHENTICATED');
        request.log.warn({ peer, code: error.code }, 'request authentication failed');
        return sendProblem(reply, error);
      }
      const taken = deps.buckets.take(peer);
      if (!taken.allowed) return sendProblem(reply, new ProtocolError('RATE_LIMITED', undefined, { retryAfterSeconds: taken.retryAfterSeconds }));
      const jwe = body.toString('latin1');
      if (!ASCII.test(jwe)) return sendProblem(reply, new ProtocolError('MALFORMED', 'A compact JWE is ASCII'));
      try {
        // Hashed synchronously (native, some microseconds): an asynchronous digest would put the
        // request back in the event loop's queue, behind whatever else is waiting there.
        const accepted = await acceptInbound(deps.accept, jwe, peer, sha256b64uSync(body));
        return reply.code(202).header('content-type', 'application/json').send(JSON.stringify({ receipt: accepted.receipt }));
      } catch (e) {
        if (e instanceof MessageRejected) return sendProblem(reply, e, e.receipt ? { receipt: e.receipt } : {});
        throw e;
      }
    },
  );
}
