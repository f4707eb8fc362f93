/**
 * The local API over HTTP, as an agency's case-management software uses it: tokens and roles,
 * consent, agreement co-signing, sending, reading with disclosures (audited), delivery states,
 * audit export, OpenAPI, signed webhooks, health and metrics.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toTimestamp } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, CONSENT_TEXT_DIGEST, referralAgreement, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

interface Hook {
  headers: IncomingMessage['headers'];
  body: string;
}

async function api(node: RunningNode, token: string | undefined, method: string, path: string, body?: unknown) {
  const res = await fetch(`${node.url}/api/v1${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

describe('local API', () => {
  const cluster = new Cluster();
  const hooks: Hook[] = [];
  let hookServer: Server;
  let agency: RunningNode;
  let partner: RunningNode;
  const tokens: Record<string, Record<string, string>> = { agency: {}, partner: {} };
  const SECRET = 'webhook-secret-for-tests-only';

  beforeAll(async () => {
    hookServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body });
        // The first notification fails once, to show it is retried.
        res.statusCode = hooks.length === 1 ? 503 : 204;
        res.end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
    const hookUrl = `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/hooks/passerelle`;
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN', config: { webhooks: [{ url: hookUrl, secret: SECRET }] } });
    for (const [name, node] of [['agency', agency], ['partner', partner]] as const) {
      for (const role of ['caseworker', 'administrator', 'auditor'] as const) tokens[name]![role] = (await node.createToken(role, `${role} of ${name}`)).secret;
    }
  });
  afterAll(async () => {
    await cluster.close();
    hookServer.close();
  });

  it('needs a token with the right role, and answers problem+json otherwise', async () => {
    const none = await api(agency, undefined, 'GET', '/inbox');
    expect(none.status).toBe(401);
    expect(none.type).toContain('application/problem+json');
    expect(none.json).toMatchObject({ code: 'UNAUTHORIZED', type: 'urn:passerelle:error:UNAUTHORIZED' });
    expect((await api(agency, 'pst_not-a-real-token-0000000000', 'GET', '/inbox')).status).toBe(401);
    const wrongRole = await api(agency, tokens.agency!.auditor, 'GET', '/inbox');
    expect(wrongRole.status).toBe(403);
    expect(wrongRole.json?.code).toBe('FORBIDDEN');
    expect((await api(agency, tokens.agency!.caseworker, 'POST', '/peers', { nodeId: partner.id, fingerprints: partner.fingerprints() })).status).toBe(403);
    const invalid = await api(agency, tokens.agency!.caseworker, 'POST', '/messages', { type: 'referral' });
    expect(invalid.status).toBe(400);
    expect(invalid.json?.code).toBe('SCHEMA_INVALID');
  });

  it('runs pinning, co-signing, consent, sending and reading through HTTP', async () => {
    const adminA = tokens.agency!.administrator!;
    const adminB = tokens.partner!.administrator!;
    const pinned = await api(agency, adminA, 'POST', '/peers', { nodeId: partner.id, fingerprints: partner.fingerprints() });
    expect(pinned.status).toBe(201);
    expect(pinned.json?.document?.name).toBe('Partenaire Exemple');
    expect((await api(partner, adminB, 'POST', '/peers', { nodeId: agency.id, fingerprints: agency.fingerprints() })).status).toBe(201);

    const { id: _id, version: _v, createdAt: _c, ...draft } = referralAgreement(agency, partner);
    const signedA = await api(agency, adminA, 'POST', '/agreements/sign', { agreement: draft });
    expect(signedA.status).toBe(200);
    const signedBoth = await api(partner, adminB, 'POST', '/agreements/sign', { agreement: signedA.json!.jws });
    expect(signedBoth.json!.jws.signatures).toHaveLength(2);
    const regA = await api(agency, adminA, 'POST', '/agreements', { jws: signedBoth.json!.jws });
    expect(regA.json).toMatchObject({ state: 'in-force', inForce: true });
    expect((await api(partner, adminB, 'POST', '/agreements', { jws: signedBoth.json!.jws })).status).toBe(201);
    const agreementId = regA.json!.id as string;

    const cw = tokens.agency!.caseworker!;
    const consent = await api(agency, cw, 'POST', '/consents', {
      subject: 'case-be-2026-0042',
      purposes: ['referral'],
      recipients: [partner.id],
      categories: ['identity', 'contact', 'health', 'return-travel'],
      explicitConsent: ['health'],
      collection: { method: 'oral', language: 'fr', interpreter: { kind: 'interpreter', language: 'wo' }, text: { version: '2026-01', digest: CONSENT_TEXT_DIGEST } },
      collectedAt: toTimestamp(Date.now()),
      expiresAt: toTimestamp(Date.now() + 90 * 24 * 3600_000),
      collectedBy: { role: 'caseworker', staffRef: 'cw-017' },
    });
    expect(consent.status).toBe(201);

    const sent = await api(agency, cw, 'POST', '/messages', referralInput(partner.id, agreementId, consent.json!.id));
    expect(sent.status).toBe(202);
    expect(sent.json?.state).toBe('queued');
    const delivered = await waitFor(async () => {
      const r = await api(agency, cw, 'GET', `/outbox/${sent.json!.id}`);
      return r.json?.state === 'delivered' ? r.json : undefined;
    });
    expect(typeof delivered.receipt).toBe('string');
    expect((await api(agency, tokens.agency!.administrator, 'GET', `/outbox?state=delivered`)).json!.messages.map((m: { id: string }) => m.id)).toContain(sent.json!.id);

    const cwB = tokens.partner!.caseworker!;
    const list = await api(partner, cwB, 'GET', '/inbox');
    expect(list.json!.messages).toHaveLength(1);
    expect(JSON.stringify(list.json)).not.toContain('Awa');
    const auditBefore = (await api(partner, tokens.partner!.auditor, 'GET', '/audit')).json!.size as number;
    const read = await api(partner, cwB, 'GET', `/inbox/${sent.json!.id}`);
    expect(read.json?.data?.identity?.givenName).toBe('Awa');
    const audit = await api(partner, tokens.partner!.auditor, 'GET', `/audit?from=${auditBefore}`);
    expect(audit.json!.events.some((e: { kind: string; fields: { messageId?: string } }) => e.kind === 'personal-data.read' && e.fields.messageId === sent.json!.id)).toBe(true);

    const threads = await api(partner, cwB, 'GET', '/threads');
    expect(threads.json!.threads).toHaveLength(1);
    const thread = await api(partner, cwB, 'GET', `/threads/${read.json!.threadId}`);
    expect(thread.json!.messages[0].data.contact.phone).toBe('+32 470 00 00 00');

    // The webhook: ids only, HMAC-signed, retried after the first 503.
    await waitFor(() => (hooks.length >= 2 ? true : undefined));
    const last = hooks.at(-1)!;
    const payload = JSON.parse(last.body) as Record<string, string>;
    expect(payload).toMatchObject({ event: 'message.received', messageId: sent.json!.id, sender: agency.id, type: 'referral' });
    expect(last.body).not.toContain('Awa');
    const expected = `v1=${createHmac('sha256', SECRET).update(`${String(last.headers['passerelle-webhook-timestamp'])}.${last.body}`).digest('base64url')}`;
    expect(last.headers['passerelle-webhook-signature']).toBe(expected);
    expect(hooks[0]!.headers['passerelle-webhook-id']).toBe(last.headers['passerelle-webhook-id']);

    const withdrawn = await api(agency, cw, 'POST', `/consents/${consent.json!.id}/withdraw`, {});
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.json).toMatchObject({ notified: [partner.id] });
  });

  it('creates and revokes tokens; the secret is shown once and never stored', async () => {
    const created = await api(agency, tokens.agency!.administrator, 'POST', '/tokens', { role: 'caseworker', label: 'case software' });
    expect(created.status).toBe(201);
    const secret = created.json!.secret as string;
    expect((await api(agency, secret, 'GET', '/outbox')).status).toBe(200);
    const listed = await api(agency, tokens.agency!.administrator, 'GET', '/tokens');
    expect(JSON.stringify(listed.json)).not.toContain(secret);
    expect(listed.json!.tokens.every((t: Record<string, unknown>) => !('hash' in t))).toBe(true);
    expect((await api(agency, tokens.agency!.administrator, 'DELETE', `/tokens/${created.json!.id}`)).status).toBe(204);
    expect((await api(agency, secret, 'GET', '/outbox')).status).toBe(401);
  });

  it('describes itself in OpenAPI 3.1', async () => {
    const doc = await api(agency, undefined, 'GET', '/openapi.json');
    expect(doc.json!.openapi).toBe('3.1.0');
    expect(Object.keys(doc.json!.paths)).toContain('/api/v1/messages');
    expect(doc.json!.components.schemas.SendMessageInput.properties.type.enum).toContain('referral');
    expect(doc.json!.components.schemas.RecordConsentInput.required).toContain('subject');
  });

  it('reports health, readiness and metrics', async () => {
    expect((await fetch(`${agency.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${agency.url}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${agency.url}/metrics`)).text();
    expect(metrics).toMatch(/passerelle_outbox_messages\{state="delivered"\} [1-9]/);
    expect(metrics).toMatch(/passerelle_deliveries_total\{outcome="delivered"\} [1-9]/);
    expect(metrics).toContain('passerelle_delivery_duration_seconds_bucket');
    const partnerMetrics = await (await fetch(`${partner.url}/metrics`)).text();
    expect(partnerMetrics).toMatch(/passerelle_inbox_total\{code="",result="accepted"\} [1-9]/);
  });
});
