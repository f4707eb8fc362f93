/**
 * OpenAPI 3.1 description of the local API. Paths are written by hand; request bodies come from
 * the same zod schemas the handlers validate with (z.toJSONSchema), so the two cannot drift.
 */
import { z } from 'zod';
import {
  AddPeerInput,
  CreateTokenInput,
  RecordConsentInput,
  RefreshPeerInput,
  RegisterAgreementInput,
  RegisterTerminationInput,
  SendMessageInput,
  SignAgreementInput,
  TerminateAgreementInput,
  WithdrawConsentInput,
} from './schemas.js';

type Role = 'caseworker' | 'administrator' | 'auditor';

const REQUEST_SCHEMAS = {
  AddPeerInput,
  RefreshPeerInput,
  SignAgreementInput,
  RegisterAgreementInput,
  TerminateAgreementInput,
  RegisterTerminationInput,
  RecordConsentInput,
  WithdrawConsentInput,
  SendMessageInput,
  CreateTokenInput,
} as const;

/**
 * Every schema registered with an id (protocol vocabulary, message bodies, these requests) as
 * OpenAPI components, cross-referenced by `#/components/schemas/<id>`.
 */
function componentSchemas(): Record<string, unknown> {
  for (const schema of Object.values(REQUEST_SCHEMAS)) if (!z.globalRegistry.has(schema)) throw new Error('request schema without id');
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  const out: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
    out[id] = rest;
  }
  return out;
}

const problem = { description: 'RFC 9457 problem (code, title, status, detail)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });

function op(summary: string, roles: Role[], options: { body?: keyof typeof REQUEST_SCHEMAS; status?: string; params?: string[]; query?: string[]; personal?: boolean } = {}) {
  return {
    summary,
    description: `Roles: ${roles.join(', ')}.${options.personal ? ' Returns personal data; every call is written to the audit log.' : ''}`,
    security: [{ bearer: [] }],
    'x-roles': roles,
    ...(options.params || options.query
      ? {
          parameters: [
            ...(options.params ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
            ...(options.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
          ],
        }
      : {}),
    ...(options.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${options.body}` } } } } }
      : {}),
    responses: { [options.status ?? '200']: ok(summary), '400': problem, '401': problem, '403': problem, '422': problem, '429': problem },
  };
}

let cached: Record<string, unknown> | undefined;

export function buildOpenApi(serverUrl: string): Record<string, unknown> {
  cached ??= {
    openapi: '3.1.0',
    info: {
      title: 'Passerelle node local API',
      version: '1',
      description: 'The API an organisation\'s own software uses to record consent, send and read messages, and follow deliveries. Errors are RFC 9457 problem documents with a stable `code` (spec/errors.md).',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token created by an administrator; each token has one role.' } },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code'],
          properties: {
            type: { type: 'string', description: 'urn:passerelle:error:<code>' },
            title: { type: 'string' },
            status: { type: 'integer' },
            code: { type: 'string' },
            detail: { type: 'string' },
            serverTime: { type: 'string', description: 'Present with CLOCK_SKEW.' },
          },
        },
        ...componentSchemas(),
      },
    },
    paths: {
      '/api/v1/node': { get: op('This node: id, fingerprints, node document', ['caseworker', 'administrator', 'auditor']) },
      '/api/v1/peers': {
        get: op('List pinned peers', ['caseworker', 'administrator', 'auditor']),
        post: op('Pin a peer by node id and fingerprints', ['administrator'], { body: 'AddPeerInput', status: '201' }),
      },
      '/api/v1/peers/refresh': { post: op("Fetch a pinned peer's node document again", ['administrator'], { body: 'RefreshPeerInput' }) },
      '/api/v1/agreements': {
        get: op('List registered agreements with their status', ['administrator', 'caseworker']),
        post: op('Register a co-signed agreement', ['administrator'], { body: 'RegisterAgreementInput', status: '201' }),
      },
      '/api/v1/agreements/sign': { post: op("Add this node's signature to an agreement", ['administrator'], { body: 'SignAgreementInput' }) },
      '/api/v1/agreements/{id}/terminate': { post: op('Terminate an agreement (returns the signed termination)', ['administrator'], { body: 'TerminateAgreementInput', params: ['id'] }) },
      '/api/v1/agreements/terminations': { post: op("Register another party's signed termination", ['administrator'], { body: 'RegisterTerminationInput', status: '201' }) },
      '/api/v1/consents': {
        get: op('List consent records', ['caseworker'], { personal: true }),
        post: op('Record and sign a consent', ['caseworker'], { body: 'RecordConsentInput', status: '201' }),
      },
      '/api/v1/consents/{id}': { get: op('Read a consent record', ['caseworker'], { params: ['id'], personal: true }) },
      '/api/v1/consents/{id}/withdraw': {
        post: op('Withdraw a consent: cancels queued messages and notifies every recipient first', ['caseworker'], { body: 'WithdrawConsentInput', params: ['id'] }),
      },
      '/api/v1/messages': { post: op('Build, check, seal and queue a message', ['caseworker'], { body: 'SendMessageInput', status: '202' }) },
      '/api/v1/inbox': { get: op('List inbound messages (no personal data)', ['caseworker'], { query: ['sender', 'consentId', 'threadId', 'limit'] }) },
      '/api/v1/inbox/{id}': { get: op('Read an inbound message with its disclosures', ['caseworker'], { params: ['id'], personal: true }) },
      '/api/v1/threads': { get: op('List threads', ['caseworker']) },
      '/api/v1/threads/{id}': { get: op('Read a thread', ['caseworker'], { params: ['id'], personal: true }) },
      '/api/v1/outbox': { get: op('Delivery states', ['caseworker', 'administrator'], { query: ['state', 'peer', 'consentId', 'threadId', 'limit'] }) },
      '/api/v1/outbox/{id}': { get: op('Delivery state of one message, with the receipt or problem', ['caseworker', 'administrator'], { params: ['id'] }) },
      '/api/v1/audit': { get: op('Audit events in a range [from, to)', ['auditor'], { query: ['from', 'to'] }) },
      '/api/v1/audit/bundle': {
        get: op('A signed audit bundle (no personal data) for offline verification', ['auditor'], { query: ['scope', 'from', 'to', 'threadId', 'consentId', 'peer'] }),
      },
      '/api/v1/audit/checkpoints': {
        get: op("This node's signed audit-log checkpoints, smallest first", ['auditor'], { query: ['after', 'limit'] }),
        post: op('Sign a checkpoint now (when the log grew) and return the latest', ['auditor', 'administrator']),
      },
      '/api/v1/audit/proofs/inclusion': { get: op('RFC 9162 inclusion proof of one log entry', ['auditor'], { query: ['index', 'size'] }) },
      '/api/v1/audit/proofs/consistency': { get: op('RFC 9162 consistency proof between two log sizes', ['auditor'], { query: ['from', 'to'] }) },
      '/api/v1/tokens': {
        get: op('List tokens (never their secrets)', ['administrator']),
        post: op('Create a token; the secret is returned once', ['administrator'], { body: 'CreateTokenInput', status: '201' }),
      },
      '/api/v1/tokens/{id}': { delete: op('Revoke a token', ['administrator'], { params: ['id'], status: '204' }) },
    },
  };
  return { ...cached, servers: [{ url: serverUrl }] };
}
