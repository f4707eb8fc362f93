/**
 * The local API for the agency's own software (spec/node.md §5), under /api/v1: bearer tokens
 * with one role each, zod-validated JSON, problem+json errors. Nothing personal is readable
 * without a caseworker token, and every read of personal data is audited by the service.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createAgreement, ProtocolError, type Agreement, type AgreementInput, type GeneralJws } from '@passerelle/protocol';
import { authenticateBearer, type TokenRole } from '../../auth/tokens.js';
import type { NodeIdentity } from '../../identity/node-identity.js';
import type { Store, TokenRecord } from '../../store/types.js';
import type { TokenBuckets } from '../token-bucket.js';
import { buildOpenApi } from './openapi.js';
import {
  AddPeerInput,
  AuditBundleQuery,
  AuditCheckpointsQuery,
  AuditQuery,
  ConsistencyProofQuery,
  InclusionProofQuery,
  CreateTokenInput,
  IdParam,
  InboxQuery,
  OutboxQuery,
  RecordConsentInput,
  RefreshPeerInput,
  RegisterAgreementInput,
  RegisterTerminationInput,
  SendMessageInput,
  SignAgreementInput,
  TerminateAgreementInput,
  WithdrawConsentInput,
} from './schemas.js';
import type { LocalApiService } from './service.js';

export const API_PREFIX = '/api/v1';
const MAX_AUDIT_RANGE = 10_000;

declare module 'fastify' {
  interface FastifyRequest {
    apiToken?: TokenRecord;
  }
}

export interface LocalApiDeps {
  store: Store;
  identity: NodeIdentity;
  service: LocalApiService;
  buckets: TokenBuckets;
}

export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    throw new ProtocolError('SCHEMA_INVALID', 'The request does not match its schema', {
      // Messages can quote the input (every unrecognised key, for one): bounded, so an answer never echoes a large body back.
      issues: parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.').slice(0, 200), message: i.message.slice(0, 200) })),
    });
  }
  return parsed.data;
}

function json(reply: FastifyReply, status: number, value: unknown): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify(value));
}

function isGeneralJws(value: unknown): value is GeneralJws {
  return typeof value === 'object' && value !== null && typeof (value as GeneralJws).payload === 'string' && Array.isArray((value as GeneralJws).signatures);
}

export function registerLocalApi(app: FastifyInstance, deps: LocalApiDeps): void {
  const { service } = deps;
  // onRequest, not preHandler: a caller without a valid token is refused before its body is read
  // and parsed, so anonymous requests cost a header check and one lookup, not a JSON parse.
  const allow = (...roles: TokenRole[]) => ({
    onRequest: async (request: FastifyRequest) => {
      const token = await authenticateBearer(deps.store, request.headers.authorization);
      if (!roles.includes(token.role)) throw new ProtocolError('FORBIDDEN', `This endpoint needs one of the roles: ${roles.join(', ')}`);
      const taken = deps.buckets.take(token.id);
      if (!taken.allowed) throw new ProtocolError('RATE_LIMITED', undefined, { retryAfterSeconds: taken.retryAfterSeconds });
      request.apiToken = token;
    },
  });
  const reader = (request: FastifyRequest) => `token:${request.apiToken?.id ?? 'unknown'}`;
  const everyone = allow('caseworker', 'administrator', 'auditor');

  app.get(`${API_PREFIX}/openapi.json`, async (_request, reply) => json(reply, 200, buildOpenApi(deps.identity.id)));

  app.get(`${API_PREFIX}/node`, everyone, async (_request, reply) =>
    json(reply, 200, { id: deps.identity.id, fingerprints: deps.identity.fingerprints(), document: deps.identity.document }),
  );

  // Peers (administrator)
  app.post(`${API_PREFIX}/peers`, allow('administrator'), async (request, reply) => {
    const input = parseInput(AddPeerInput, request.body);
    return json(reply, 201, await service.addPeer(input.nodeId, input.fingerprints, input.fetchDocument === undefined ? {} : { fetchDocument: input.fetchDocument }));
  });
  app.get(`${API_PREFIX}/peers`, everyone, async (_request, reply) => json(reply, 200, { peers: service.listPeers() }));
  app.post(`${API_PREFIX}/peers/refresh`, allow('administrator'), async (request, reply) => {
    const input = parseInput(RefreshPeerInput, request.body);
    return json(reply, 200, await service.refreshPeer(input.nodeId));
  });

  // Agreements (administrator registers and signs; caseworkers may list them to pick one)
  app.post(`${API_PREFIX}/agreements/sign`, allow('administrator'), async (request, reply) => {
    const { agreement } = parseInput(SignAgreementInput, request.body);
    const target: Agreement | GeneralJws = isGeneralJws(agreement) ? agreement : createAgreement(agreement as unknown as AgreementInput);
    return json(reply, 200, { jws: await service.signAgreement(target) });
  });
  app.post(`${API_PREFIX}/agreements`, allow('administrator'), async (request, reply) => {
    const { jws } = parseInput(RegisterAgreementInput, request.body);
    return json(reply, 201, await service.registerAgreement(jws));
  });
  app.get(`${API_PREFIX}/agreements`, allow('administrator', 'caseworker'), async (_request, reply) =>
    json(reply, 200, { agreements: await service.listAgreements() }),
  );
  app.post(`${API_PREFIX}/agreements/:id/terminate`, allow('administrator'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    const { reason } = parseInput(TerminateAgreementInput, request.body);
    return json(reply, 200, { termination: await service.terminateAgreement(id, reason) });
  });
  app.post(`${API_PREFIX}/agreements/terminations`, allow('administrator'), async (request, reply) => {
    const { jws } = parseInput(RegisterTerminationInput, request.body);
    await service.registerTermination(jws);
    return json(reply, 201, { registered: true });
  });

  // Consents (caseworker)
  app.post(`${API_PREFIX}/consents`, allow('caseworker'), async (request, reply) => {
    const input = parseInput(RecordConsentInput, request.body);
    return json(reply, 201, await service.recordConsent(input));
  });
  app.get(`${API_PREFIX}/consents`, allow('caseworker'), async (request, reply) => json(reply, 200, { consents: await service.listConsents(reader(request)) }));
  app.get(`${API_PREFIX}/consents/:id`, allow('caseworker'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    return json(reply, 200, await service.readConsent(id, reader(request)));
  });
  app.post(`${API_PREFIX}/consents/:id/withdraw`, allow('caseworker'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    const input = parseInput(WithdrawConsentInput, request.body);
    return json(reply, 200, await service.withdrawConsent(id, input));
  });

  // Messages (caseworker)
  app.post(`${API_PREFIX}/messages`, allow('caseworker'), async (request, reply) => {
    const input = parseInput(SendMessageInput, request.body);
    return json(reply, 202, await service.send(input));
  });
  app.get(`${API_PREFIX}/inbox`, allow('caseworker'), async (request, reply) => {
    const query = parseInput(InboxQuery, request.query);
    return json(reply, 200, { messages: await service.listInbox(query) });
  });
  app.get(`${API_PREFIX}/inbox/:id`, allow('caseworker'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    return json(reply, 200, await service.readInbox(id, reader(request)));
  });
  app.get(`${API_PREFIX}/threads`, allow('caseworker'), async (_request, reply) => json(reply, 200, { threads: await service.listThreads() }));
  app.get(`${API_PREFIX}/threads/:id`, allow('caseworker'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    const messages = await service.readThread(id, reader(request));
    if (messages.length === 0) throw new ProtocolError('NOT_FOUND', 'No such thread');
    return json(reply, 200, { threadId: id, messages });
  });

  // Delivery states (no personal data: ids, states, codes, receipts)
  app.get(`${API_PREFIX}/outbox`, allow('caseworker', 'administrator'), async (request, reply) => {
    const query = parseInput(OutboxQuery, request.query);
    return json(reply, 200, { messages: await service.listOutbox(query) });
  });
  app.get(`${API_PREFIX}/outbox/:id`, allow('caseworker', 'administrator'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    const entry = await service.getOutbox(id);
    if (!entry) throw new ProtocolError('NOT_FOUND', 'No outbound message with this id');
    return json(reply, 200, entry);
  });

  // Audit (auditor): the raw event range, the signed bundle, checkpoints and proofs (spec/node.md §9).
  app.get(`${API_PREFIX}/audit`, allow('auditor'), async (request, reply) => {
    const query = parseInput(AuditQuery, request.query);
    const size = await deps.store.auditSize();
    const to = Math.min(query.to ?? size, size, query.from + MAX_AUDIT_RANGE);
    return json(reply, 200, { size, from: query.from, to, events: await service.readAudit(query.from, Math.max(query.from, to)) });
  });
  app.get(`${API_PREFIX}/audit/bundle`, allow('auditor'), async (request, reply) => {
    const { withDisclosures, scope, ...members } = parseInput(AuditBundleQuery, request.query);
    // A bearer token never reads personal data in bulk: a lawful full audit is exported on the node's host.
    if (withDisclosures === 'true') {
      throw new ProtocolError('FORBIDDEN', 'A bundle with disclosures carries personal data: export it on the node with `passerelle audit export --with-disclosures`');
    }
    return json(reply, 200, await service.exportAuditBundle({ scope, ...members, reader: reader(request) }));
  });
  app.get(`${API_PREFIX}/audit/checkpoints`, allow('auditor'), async (request, reply) => {
    const query = parseInput(AuditCheckpointsQuery, request.query);
    return json(reply, 200, { checkpoints: (await service.audit.checkpoints(query.after, query.limit)).map((c) => c.jws) });
  });
  app.post(`${API_PREFIX}/audit/checkpoints`, allow('auditor', 'administrator'), async (_request, reply) =>
    json(reply, 200, { checkpoint: (await service.audit.checkpoint()).jws }),
  );
  app.get(`${API_PREFIX}/audit/proofs/inclusion`, allow('auditor'), async (request, reply) => {
    const query = parseInput(InclusionProofQuery, request.query);
    return json(reply, 200, await service.audit.inclusionProof(query.index, query.size));
  });
  app.get(`${API_PREFIX}/audit/proofs/consistency`, allow('auditor'), async (request, reply) => {
    const query = parseInput(ConsistencyProofQuery, request.query);
    return json(reply, 200, await service.audit.consistencyProof(query.from, query.to));
  });

  // Tokens (administrator)
  app.post(`${API_PREFIX}/tokens`, allow('administrator'), async (request, reply) => {
    const input = parseInput(CreateTokenInput, request.body);
    return json(reply, 201, await service.createToken(input.role, input.label));
  });
  app.get(`${API_PREFIX}/tokens`, allow('administrator'), async (_request, reply) => {
    const tokens = (await deps.store.listTokens()).map(({ hash: _hash, ...t }) => t);
    return json(reply, 200, { tokens });
  });
  app.delete(`${API_PREFIX}/tokens/:id`, allow('administrator'), async (request, reply) => {
    const { id } = parseInput(IdParam, request.params);
    await service.revokeToken(id);
    return reply.code(204).send();
  });
}
