/**
 * The node's HTTP edge under attack (docs/attacks.md, Transport): oversized and ambiguously
 * framed requests, slow clients, pathological JSON, unauthenticated floods, and outbound requests
 * steered at internal addresses, through redirects or into endless and compressed answers.
 * Every refusal carries its stable code, stores nothing, and the node serves a legitimate request
 * afterwards.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { currentEncryptionKey, generateSigningKey, type SigningKeyPair } from '@passerelle/protocol';
import { startNode, initNodeDir, type RunningNode } from '@passerelle/node';
import { Cluster, coSign, postSignedRaw, prepareNode, recordConsent, referralInput, tempDir, waitFor } from '../../packages/node/test/harness/cluster.js';
import { decodeSegment, encryptCompact, signWithHeader } from '../../packages/protocol/test/adversarial/helpers.js';
import {
  installTripwire,
  rawBody,
  rawExchange,
  readAll,
  sealReferral,
  serveLoopback,
  signedHeaders,
  sleep,
  startPair,
  type Pair,
} from './helpers.js';

// Counts of the expensive steps, so that tests can show which requests reached them.
const calls = vi.hoisted(() => ({ open: 0, verifyRequest: 0 }));
vi.mock('@passerelle/protocol', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@passerelle/protocol')>();
  return {
    ...actual,
    open: (...args: Parameters<typeof actual.open>) => {
      calls.open += 1;
      return actual.open(...args);
    },
  };
});
vi.mock('../../packages/node/src/http/message-signatures.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../packages/node/src/http/message-signatures.js')>();
  return {
    ...actual,
    verifyRequest: (...args: Parameters<typeof actual.verifyRequest>) => {
      calls.verifyRequest += 1;
      return actual.verifyRequest(...args);
    },
  };
});

const KiB = 1024;
const MiB = 1024 * KiB;

/** The agency delivers one referral through its outbox, proving the partner still serves. */
async function deliversOne(p: Pair): Promise<void> {
  const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
  await waitFor(async () => ((await p.agency.getOutbox(sent.id))?.state === 'delivered' ? true : undefined), 15_000);
}

function portOf(node: RunningNode): number {
  return Number(new URL(node.id).port);
}

describe('transport: request bodies and framing', () => {
  const cluster = new Cluster();
  let p: Pair;
  let port: number;
  let apiToken: string;

  beforeAll(async () => {
    p = await startPair(cluster, {}, {
      config: { limits: { inboxBodyLimit: 64 * KiB, apiBodyLimit: 64 * KiB, headersTimeoutMs: 600, requestTimeoutMs: 1200 } },
    });
    port = portOf(p.partner);
    apiToken = (await p.partner.createToken('caseworker', 'Logiciel de suivi des dossiers')).secret;
  });
  afterAll(() => cluster.close());

  /** Nothing from the attack was stored, and a legitimate delivery goes through afterwards. */
  async function nothingStoredStillServing(): Promise<void> {
    const before = (await p.partner.listInbox()).length;
    expect(await p.partner.listOutbox()).toHaveLength(0);
    await deliversOne(p);
    expect(await p.partner.listInbox()).toHaveLength(before + 1);
  }

  it('answers a declared oversize inbox body with 413 TOO_LARGE at once and closes without reading it', async () => {
    const before = calls.verifyRequest;
    const r = await rawExchange({
      port,
      head: `POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jose\r\nContent-Length: ${200 * MiB}\r\n\r\n`,
      stream: { total: 200 * MiB },
      timeoutMs: 10_000,
    });
    expect(r.status).toBe(413);
    expect(rawBody(r.response)).toMatchObject({ code: 'TOO_LARGE', status: 413 });
    // The kernel's socket buffers take a few MiB; the other 190-odd MiB were never read.
    expect(r.bodyBytesWritten).toBeLessThan(32 * MiB);
    expect(calls.verifyRequest).toBe(before);
    await nothingStoredStillServing();
  });

  it('cuts off a chunked inbox body at the limit with 413 TOO_LARGE and closes the connection', async () => {
    const url = `${p.partner.id}/inbox`;
    const headers = await signedHeaders({ url, body: 'x', key: p.agency.identity.signingKey(), sender: p.agency.id });
    const head = `POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}Transfer-Encoding: chunked\r\n\r\n`;
    const block = Buffer.concat([Buffer.from('4000\r\n'), Buffer.alloc(16 * KiB, 0x41), Buffer.from('\r\n')]);
    const r = await rawExchange({ port, head, stream: { total: 200 * MiB, block }, timeoutMs: 10_000 });
    expect(r.status).toBe(413);
    expect(rawBody(r.response)).toMatchObject({ code: 'TOO_LARGE' });
    expect(r.bodyBytesWritten).toBeLessThan(32 * MiB);
    await nothingStoredStillServing();
  });

  it('refuses a local API request without a token before reading its body (401 UNAUTHORIZED, connection closed)', async () => {
    const r = await rawExchange({
      port,
      head: `POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${MiB}\r\n\r\n`,
      timeoutMs: 5_000,
    });
    expect(r.status).toBe(401);
    expect(rawBody(r.response)).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(r.response).toMatch(/\r\nconnection: close\r\n/i);
    // Closed by the server right after answering, not after a timeout.
    expect(r.closedAfterMs).toBeLessThan(1_000);
    const oversize = await rawExchange({
      port,
      head: `POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${apiToken}\r\nContent-Type: application/json\r\nContent-Length: ${100 * MiB}\r\n\r\n`,
      stream: { total: 100 * MiB },
      timeoutMs: 10_000,
    });
    expect(oversize.status).toBe(413);
    expect(rawBody(oversize.response)).toMatchObject({ code: 'TOO_LARGE' });
    expect(oversize.bodyBytesWritten).toBeLessThan(32 * MiB);
    await nothingStoredStillServing();
  });

  const smuggled = 'GET /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
  const framings: [string, string][] = [
    ['Content-Length and Transfer-Encoding: chunked', `Content-Length: 49\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['Transfer-Encoding: chunked then Content-Length', `Transfer-Encoding: chunked\r\nContent-Length: 49\r\n\r\n0\r\n\r\n${smuggled}`],
    ['two different Content-Length values', `Content-Length: 5\r\nContent-Length: 54\r\n\r\nhello${smuggled}`],
    ['a comma-separated Content-Length list', `Content-Length: 5, 54\r\n\r\nhello${smuggled}`],
    ['chunked not last in Transfer-Encoding', `Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
    ['whitespace before the colon of Transfer-Encoding', `Transfer-Encoding : chunked\r\nContent-Length: 49\r\n\r\n0\r\n\r\n${smuggled}`],
    ['a Content-Length that is not a decimal number', `Content-Length: +49\r\n\r\n0\r\n\r\n${smuggled}`],
    ['a Transfer-Encoding other than chunked', `Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello${smuggled}`],
    ['bare LF line endings', `Transfer-Encoding: chunked\nContent-Length: 49\n\n0\n\n${smuggled}`],
  ];
  it.each(framings)('refuses ambiguous framing (%s) with 400 MALFORMED, closes, and processes nothing', async (_name, rest) => {
    const verifications = calls.verifyRequest;
    const r = await rawExchange({
      port,
      head: `POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jose\r\n${rest}`,
      timeoutMs: 5_000,
    });
    expect(r.status).toBe(400);
    expect(rawBody(r.response)).toMatchObject({ code: 'MALFORMED', status: 400 });
    // One answer only: the smuggled second request was never read as a request.
    expect(r.response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(r.closedAfterMs).toBeLessThan(1_000);
    expect(calls.verifyRequest).toBe(verifications);
    await nothingStoredStillServing();
  });

  it('cuts off clients that send their headers or their body a byte at a time (slowloris), and keeps serving', async () => {
    const slowHeaders = Array.from({ length: 20 }, () =>
      rawExchange({ port, head: 'POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\n', dribble: { chunk: 'X', everyMs: 50 }, timeoutMs: 10_000 }),
    );
    const slowBodies = Array.from({ length: 20 }, () =>
      rawExchange({
        port,
        head: `POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${apiToken}\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n`,
        dribble: { chunk: ' ', everyMs: 50 },
        timeoutMs: 10_000,
      }),
    );
    // A legitimate delivery goes through while forty connections dribble.
    await deliversOne(p);
    for (const r of await Promise.all(slowHeaders)) {
      // headersTimeout 600 ms, swept every 150 ms: cut off well before the 10 s the client would go on.
      expect(r.closedAfterMs).toBeLessThan(2_000);
      expect(r.status).toBe(408);
      expect(rawBody(r.response)).toMatchObject({ code: 'MALFORMED', status: 408 });
    }
    for (const r of await Promise.all(slowBodies)) {
      expect(r.closedAfterMs).toBeLessThan(3_000);
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(1_000);
      expect(r.status).toBe(408);
    }
    expect(await p.partner.listOutbox()).toHaveLength(0);
    await deliversOne(p);
  });
});

describe('transport: pathological JSON', () => {
  const cluster = new Cluster();
  let p: Pair;
  let apiToken: string;

  beforeAll(async () => {
    p = await startPair(cluster);
    apiToken = (await p.agency.createToken('caseworker', 'Logiciel de suivi des dossiers')).secret;
  });
  afterAll(() => cluster.close());

  async function sendThroughApi(body: string): Promise<{ status: number; text: string; ms: number }> {
    const started = performance.now();
    const res = await fetch(`${p.agency.id}/api/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiToken}` },
      body,
    });
    return { status: res.status, text: await res.text(), ms: performance.now() - started };
  }

  it('refuses deeply nested and very wide JSON on the local API (SCHEMA_INVALID), bounded in time and answer size', async () => {
    const envelope = (data: string) =>
      `{"type":"referral","to":"${p.partner.id}","agreementId":"${p.agreementId}","consentId":"${p.consentId}",` +
      `"body":{"subject":"case-be-2026-0042","services":["medical"],"urgency":"routine","reasonCode":"pre-departure"},"data":${data}}`;
    const depth = 100_000;
    const deepObject = await sendThroughApi(envelope(`{"identity":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`));
    const deepArray = await sendThroughApi(envelope(`{"health":{"needs":${'['.repeat(depth)}${']'.repeat(depth)}}}`));
    const wide = await sendThroughApi(`{${Array.from({ length: 60_000 }, (_, i) => `"k${i}":1`).join(',')}}`);
    for (const r of [deepObject, deepArray, wide]) {
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text)).toMatchObject({ code: 'SCHEMA_INVALID' });
      expect(r.ms).toBeLessThan(2_000);
      // The answer does not echo the 600 kB of member names back.
      expect(r.text.length).toBeLessThan(8 * KiB);
    }
    expect(await p.agency.listOutbox()).toHaveLength(0);
    await deliversOne(p);
  });

  it('refuses a sealed message whose signed payload nests too deeply (TOO_LARGE) or is very wide, storing nothing', async () => {
    const genuine = await sealReferral(p.agency, p.partner, p.agreementId, p.consentId);
    const key = p.agency.identity.signingKey();
    const [headerB64, payloadB64] = genuine.jwt.split('.') as [string, string];
    const payload = Buffer.from(payloadB64, 'base64url').toString('utf8');
    // Signed for real by the agency's key: only the receiver's parser stands in the way.
    const signedWith = async (extra: string) =>
      `${await signWithHeader(decodeSegment(headerB64), Buffer.from(`${payload.slice(0, -1)},${extra}}`).toString('base64url'), key)}~`;
    const depth = 10_000;
    const deepJwt = await signedWith(`"nested":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
    const wideJwt = await signedWith(Array.from({ length: 40_000 }, (_, i) => `"x${i}":${i}`).join(','));
    const enc = currentEncryptionKey(p.partner.identity.document);
    const recipient = { ...enc.jwk, kid: enc.kid };
    const deepJwe = await encryptCompact(deepJwt, recipient);
    const wideJwe = await encryptCompact(wideJwt, recipient);
    const inbox = `${p.partner.id}/inbox`;

    const d = await postSignedRaw({ url: inbox, body: deepJwe, key, sender: p.agency.id });
    expect(d.status).toBe(413);
    expect(d.json).toMatchObject({ code: 'TOO_LARGE' });
    expect(d.json?.receipt).toBeUndefined();
    const w = await postSignedRaw({ url: inbox, body: wideJwe, key, sender: p.agency.id });
    expect(w.status).toBe(400);
    expect(w.json).toMatchObject({ code: 'SCHEMA_INVALID' });
    expect(await p.partner.store.getInbox(genuine.id)).toBeUndefined();
    // The genuine message with the same id is then accepted: the refusals left nothing behind.
    const ok = await postSignedRaw({ url: inbox, body: genuine.jwe, key, sender: p.agency.id });
    expect(ok.status).toBe(202);
  });
});

describe('transport: unauthenticated requests cost no cryptography', () => {
  const cluster = new Cluster();
  let p: Pair;

  beforeAll(async () => {
    // The default per-peer allowance (burst 60) is smaller than the 150 forged requests below.
    p = await startPair(cluster, {}, { config: { limits: { peerRateLimit: { burst: 60, perSecond: 10 } } } });
  });
  afterAll(() => cluster.close());

  it('refuses well-formed unauthenticated requests without decrypting, and without using up the real peer’s allowance', async () => {
    const inbox = `${p.partner.id}/inbox`;
    const sealed = await sealReferral(p.agency, p.partner, p.agreementId, p.consentId);
    const stranger = await generateSigningKey();
    const agencyKid = p.agency.identity.signingKey().kid;
    const forgedKey: SigningKeyPair = { ...stranger, kid: agencyKid };
    const captured = await signedHeaders({ url: inbox, body: sealed.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id, created: Math.floor(Date.now() / 1000) - 3600 });
    const kinds: { kind: string; send: () => Promise<{ status: number; code: unknown }>; reachesSignature: boolean }[] = [
      { kind: 'unknown key', reachesSignature: false, send: async () => post(await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger })) },
      { kind: 'unknown sender', reachesSignature: false, send: async () => post(await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger, sender: 'https://intrus.example.org' })) },
      { kind: 'no signature', reachesSignature: false, send: () => post({ 'content-type': 'application/jose', 'content-digest': 'sha-256=:AAAA:' }) },
      { kind: 'wrong media type', reachesSignature: false, send: async () => post({ ...(await signedHeaders({ url: inbox, body: sealed.jwe, key: p.agency.identity.signingKey() })), 'content-type': 'application/json' }) },
      { kind: 'forged with the agency kid', reachesSignature: true, send: async () => post(await signedHeaders({ url: inbox, body: sealed.jwe, key: forgedKey, sender: p.agency.id })) },
      { kind: 'captured an hour ago', reachesSignature: true, send: () => post(captured) },
    ];
    async function post(headers: Record<string, string>) {
      const res = await fetch(inbox, { method: 'POST', headers, body: sealed.jwe });
      return { status: res.status, code: ((await res.json()) as { code?: unknown }).code };
    }
    const expected: Record<string, [number, string]> = {
      'unknown key': [401, 'REQUEST_UNAUTHENTICATED'],
      'unknown sender': [401, 'PEER_UNKNOWN'],
      'no signature': [401, 'REQUEST_UNAUTHENTICATED'],
      'wrong media type': [415, 'WRONG_TYPE'],
      'forged with the agency kid': [401, 'REQUEST_UNAUTHENTICATED'],
      'captured an hour ago': [422, 'CLOCK_SKEW'],
    };
    const opened = calls.open;
    for (const k of kinds) {
      const verified = calls.verifyRequest;
      const answers = [];
      for (let batch = 0; batch < 5; batch++) answers.push(...(await Promise.all(Array.from({ length: 30 }, () => k.send()))));
      expect(answers.every((a) => a.status === expected[k.kind]![0] && a.code === expected[k.kind]![1]), k.kind).toBe(true);
      // Only requests naming a pinned peer's key reach signature verification; none is decrypted.
      expect(calls.verifyRequest - verified, k.kind).toBe(k.reachesSignature ? 150 : 0);
      expect(calls.open, k.kind).toBe(opened);
    }
    expect(await p.partner.store.getInbox(sealed.id)).toBeUndefined();
    // 300 requests claimed the agency's key; the agency itself is not rate-limited for it.
    const genuine = await postSignedRaw({ url: inbox, body: sealed.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    expect(genuine.status).toBe(202);
    expect(calls.open).toBe(opened + 1);
  });

  it('answers the refusals decided from headers alone the same at the edge (before fastify) as through the route', async () => {
    const inbox = `${p.partner.id}/inbox`;
    const sealed = await sealReferral(p.agency, p.partner, p.agreementId, p.consentId);
    const stranger = await generateSigningKey();
    const cases: Record<string, Record<string, string>> = {
      'unknown key': await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger }),
      'unknown sender': await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger, sender: 'https://intrus.example.org' }),
      'no signature': { 'content-type': 'application/jose', 'content-digest': 'sha-256=:AAAA:' },
      'wrong media type': { ...(await signedHeaders({ url: inbox, body: sealed.jwe, key: p.agency.identity.signingKey() })), 'content-type': 'application/json' },
    };
    const answer = async (url: string, headers: Record<string, string>) => {
      const res = await fetch(url, { method: 'POST', headers, body: sealed.jwe });
      return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
    };
    const opened = calls.open;
    for (const [kind, headers] of Object.entries(cases)) {
      // The edge gate takes exactly POST /inbox; with a query string the request goes through fastify's route.
      const atEdge = await answer(inbox, headers);
      const viaRoute = await answer(`${inbox}?via=route`, headers);
      expect(atEdge.status, kind).toBeGreaterThanOrEqual(400);
      expect(atEdge.type, kind).toMatch(/^application\/problem\+json/);
      expect(viaRoute, kind).toEqual(atEdge);
    }
    expect(calls.open).toBe(opened);
    expect(await p.partner.store.getInbox(sealed.id)).toBeUndefined();
  });

  it('still rate-limits the authenticated peer itself, before decrypting (429 RATE_LIMITED with Retry-After)', async () => {
    const inbox = `${p.partner.id}/inbox`;
    const opened = calls.open;
    const answers = [];
    for (let i = 0; i < 80; i++) {
      answers.push(await postSignedRaw({ url: inbox, body: 'not.a.sealed.message.x', key: p.agency.identity.signingKey(), sender: p.agency.id }));
    }
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.json?.code).toBe('RATE_LIMITED');
    expect(Number(limited[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Every request let through was decrypted (and failed); none refused for its rate was.
    expect(calls.open - opened).toBe(answers.length - limited.length);
  });
});

describe('transport: outbound requests the node refuses to make', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let lookups: Map<string, string[]>;
  let lookupCalls: Map<string, number>;
  let tripwire: ReturnType<typeof installTripwire>;

  beforeAll(async () => {
    lookups = new Map();
    lookupCalls = new Map();
    // Not in development mode: only public addresses may be reached. DNS answers come from the
    // table below, so that no test depends on (or queries) a real resolver.
    const prepared = await prepareNode({
      name: 'Centre d’accueil Exemple',
      country: 'BE',
      config: { devMode: false, limits: { outboundTimeoutMs: 1000, outboundConnectTimeoutMs: 500 } },
    });
    cluster.dirs.push(prepared.dir);
    agencyDir = prepared.dir;
    agency = await startAgency();
    tripwire = installTripwire();
  });
  let agencyDir: string;
  async function startAgency(): Promise<RunningNode> {
    const node = await startNode({
      dir: agencyDir,
      lookup: async (host) => {
        lookupCalls.set(host, (lookupCalls.get(host) ?? 0) + 1);
        const answer = lookups.get(host);
        if (!answer) throw Object.assign(new Error(`no such name in the test table: ${host}`), { code: 'ENOTFOUND' });
        // A name listed with a '|' answers its first address once, then the second (rebinding).
        return answer.length === 2 && answer[0]!.startsWith('|') ? [(lookupCalls.get(host) ?? 0) === 1 ? answer[0]!.slice(1) : answer[1]!] : answer;
      },
    });
    cluster.nodes.push(node);
    return node;
  }
  afterAll(async () => {
    tripwire.restore();
    await cluster.close();
  });

  const fingerprint = async () => [(await generateSigningKey()).kid];

  it('refuses to pin peer ids written in non-canonical address notations (SCHEMA_INVALID)', async () => {
    const ids = [
      'https://2130706433', // decimal
      'https://0177.0.0.1', // octal
      'https://0x7f000001', // hexadecimal
      'https://0x7f.1', // mixed, shortened
      'https://127.1', // shortened
      'https://127.0.0.1.', // trailing dot
      'https://[::ffff:127.0.0.1]', // IPv4-mapped, dotted (serialised as [::ffff:7f00:1])
      'https://[0:0:0:0:0:0:0:1]', // uncompressed IPv6 loopback
      'https://012.0.0.1', // octal 10.0.0.1
      'https://0xa9.0xfe.0xa9.0xfe', // hexadecimal 169.254.169.254
      'https://user@127.0.0.1',
      'http://10.0.0.7', // plain http off loopback
    ];
    const attempted = tripwire.attempts.length;
    for (const id of ids) {
      await expect(agency.addPeer(id, await fingerprint(), { fetchDocument: false }), id).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
    }
    expect(agency.listPeers()).toHaveLength(0);
    expect(tripwire.attempts).toHaveLength(attempted);
    expect((await fetch(`${agency.id}/healthz`)).status).toBe(200);
  });

  it('refuses to fetch the document of a peer whose address is loopback, private, link-local or unspecified, without connecting', async () => {
    const cases: [string, string][] = [
      ['https://127.0.0.1', 'loopback'],
      ['https://[::1]', 'loopback'],
      ['https://[::ffff:7f00:1]', 'loopback'],
      ['https://0.0.0.0', 'unspecified'],
      ['https://[::]', 'unspecified'],
      ['https://10.20.30.40', 'private'],
      ['https://172.16.0.9', 'private'],
      ['https://192.168.1.20', 'private'],
      ['https://100.64.0.7', 'private'],
      ['https://[fc00::1]', 'private'],
      ['https://[fd12:3456:789a::1]', 'private'],
      ['https://169.254.169.254', 'link-local'],
      ['https://[::ffff:a9fe:a9fe]', 'link-local'],
      ['https://[fe80::1]', 'link-local'],
    ];
    const attempted = tripwire.attempts.length;
    for (const [id, category] of cases) {
      await agency.addPeer(id, await fingerprint(), { fetchDocument: false });
      await expect(agency.refreshPeer(id), id).rejects.toMatchObject({ code: 'PEER_UNREACHABLE', details: { category } });
      expect(agency.listPeers().find((v) => v.nodeId === id)!.document).toBeUndefined();
    }
    // Refused before any socket: not even an attempt reached the tripwire.
    expect(tripwire.attempts).toHaveLength(attempted);
    expect((await fetch(`${agency.id}/healthz`)).status).toBe(200);
  });

  it('refuses names that resolve to such addresses, in every form a resolver may return them', async () => {
    const answers: [string[], string][] = [
      [['127.0.0.1'], 'loopback'],
      [['::1'], 'loopback'],
      [['::ffff:127.0.0.1'], 'loopback'],
      [['0:0:0:0:0:ffff:7f00:1'], 'loopback'],
      [['0.0.0.0'], 'unspecified'],
      [['10.0.0.8'], 'private'],
      [['192.168.0.1'], 'private'],
      [['fd00:ec2::254'], 'private'],
      [['169.254.169.254'], 'link-local'],
      [['::ffff:169.254.169.254'], 'link-local'],
      [['fe80::a00:27ff:fe4e:66a1%eth0'], 'link-local'],
      [['64:ff9b::a9fe:a9fe'], 'link-local'], // NAT64 of 169.254.169.254
      [['2002:a00:1::1'], 'private'], // 6to4 of 10.0.0.1
      [['100.128.0.1', '10.0.0.1'], 'private'], // one public and one private address: refused
    ];
    let n = 0;
    for (const [addresses, category] of answers) {
      const id = `https://passerelle-${++n}.partenaire.example`;
      lookups.set(new URL(id).hostname, addresses);
      await agency.addPeer(id, await fingerprint(), { fetchDocument: false });
      await expect(agency.refreshPeer(id), addresses.join(' ')).rejects.toMatchObject({ code: 'PEER_UNREACHABLE', details: { category } });
      expect(agency.listPeers().find((v) => v.nodeId === id)!.document).toBeUndefined();
    }
    expect(tripwire.violations).toEqual([]);
    expect((await fetch(`${agency.id}/healthz`)).status).toBe(200);
  });

  it('checks again on connecting: a name that answers a public address, then a private one (rebinding), is refused', async () => {
    const id = 'https://passerelle.rebinding.example';
    lookups.set('passerelle.rebinding.example', ['|100.128.0.1', '169.254.169.254']);
    await agency.addPeer(id, await fingerprint(), { fetchDocument: false });
    await expect(agency.refreshPeer(id)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE', details: { category: 'link-local' } });
    // The pre-flight check saw the public answer; the connector asked again and got the private one.
    expect(lookupCalls.get('passerelle.rebinding.example')).toBe(2);
    expect(tripwire.violations).toEqual([]);
    const health = await fetch(`${agency.id}/healthz`);
    expect(health.status).toBe(200);
  });

  it('does not deliver to a partner whose name now resolves to a private address, though its document was accepted before', async () => {
    // The partner's document was fetched while its name pointed elsewhere; it is kept with the pins.
    const partnerId = 'https://passerelle.partenaire-sn.example';
    const partnerDir = await tempDir();
    cluster.dirs.push(partnerDir);
    const init = await initNodeDir({ dir: partnerDir, url: partnerId, name: 'Partenaire de réintégration Exemple', country: 'SN', languages: ['fr'], config: { devMode: true, logLevel: 'silent' } });
    const partner = await startNode({ dir: partnerDir, listen: false, worker: false });
    cluster.nodes.push(partner);
    await agency.addPeer(partnerId, init.fingerprints, { fetchDocument: false });
    const at = new Date().toISOString();
    await agency.store.putPeer({ nodeId: partnerId, fingerprints: init.fingerprints, document: JSON.stringify(partner.nodeDocument()), documentVersion: 1, addedAt: at, updatedAt: at });
    await cluster.stop(agency);
    agency = await startAgency();
    await partner.addPeer(agency.id, agency.fingerprints());
    const agreementId = await coSign(agency, partner);
    const consent = await recordConsent(agency, [partnerId]);

    lookups.set('passerelle.partenaire-sn.example', ['10.0.0.5']);
    const retries: string[] = [];
    agency.events.on('outbox.retry', (e) => retries.push(e.code));
    const sent = await agency.send(referralInput(partnerId, agreementId, consent.id));
    await waitFor(() => (retries.length >= 2 ? true : undefined));
    const entry = (await agency.store.getOutbox(sent.id))!;
    expect(entry.state).toBe('queued');
    expect(retries.every((c) => c === 'PEER_UNREACHABLE')).toBe(true);
    expect(entry.lastError).toMatch(/^PEER_UNREACHABLE: .*10\.0\.0\.5 is a private address/);
    expect(tripwire.violations).toEqual([]);
  });
});

describe('transport: hostile answers from a pinned peer', () => {
  const cluster = new Cluster();
  let p: Pair;

  beforeAll(async () => {
    p = await startPair(cluster, { config: { limits: { maxResponseBytes: 64 * KiB, outboundTimeoutMs: 1000 } } });
  });
  afterAll(() => cluster.close());

  /** Pins a stand-in peer in the agency's trust store (a fresh fingerprint: its document is never accepted). */
  async function pinStandIn(handler: Parameters<typeof serveLoopback>[0]) {
    const standIn = await serveLoopback(handler);
    await p.agency.addPeer(standIn.url, [(await generateSigningKey()).kid], { fetchDocument: false });
    return standIn;
  }

  it('does not follow a redirect from a peer’s well-known URL (PEER_RESPONSE_INVALID)', async () => {
    const target = await serveLoopback((_req, res) => res.end(JSON.stringify(p.partner.nodeDocument())));
    try {
      for (const status of [301, 302, 303, 307, 308]) {
        const standIn = await pinStandIn((_req, res) => {
          res.writeHead(status, { location: `${target.url}/.well-known/passerelle/node` });
          res.end();
        });
        try {
          await expect(p.agency.refreshPeer(standIn.url)).rejects.toMatchObject({ code: 'PEER_RESPONSE_INVALID', details: { status } });
          expect(standIn.hits()).toBe(1);
        } finally {
          await standIn.close();
        }
      }
      expect(target.hits()).toBe(0);
    } finally {
      await target.close();
    }
    const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
    await waitFor(async () => ((await p.agency.getOutbox(sent.id))?.state === 'delivered' ? true : undefined));
  });

  it('caps an endless answer by size, a trickling one by time, and never inflates a compressed one', async () => {
    let streamed = 0;
    const endless = await pinStandIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const block = Buffer.alloc(16 * KiB, 0x20);
      const pump = (): void => {
        while (!res.destroyed && streamed < 512 * MiB) {
          streamed += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
      };
      res.write('{"payload":"');
      pump();
    });
    const trickle = await pinStandIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(' ')), 50);
      res.on('close', () => clearInterval(timer));
    });
    // 64 MiB of zeros in 64 KiB: a client that inflated it would hold 64 MiB for one answer.
    const bomb = gzipSync(Buffer.alloc(64 * MiB, 0), { level: 9 });
    expect(bomb.length).toBeLessThan(64 * KiB);
    const compressed = await pinStandIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length });
      res.end(bomb);
    });
    try {
      let started = performance.now();
      await expect(p.agency.refreshPeer(endless.url)).rejects.toMatchObject({ code: 'PEER_RESPONSE_INVALID' });
      expect(performance.now() - started).toBeLessThan(900);
      await sleep(100);
      // The connection was dropped at the cap: the stand-in could not push more than its socket buffers.
      expect(streamed).toBeLessThan(32 * MiB);

      started = performance.now();
      await expect(p.agency.refreshPeer(trickle.url)).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' });
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(3_000);

      const heapBefore = process.memoryUsage().heapUsed;
      await expect(p.agency.refreshPeer(compressed.url)).rejects.toMatchObject({ code: 'PEER_RESPONSE_INVALID' });
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * MiB);
    } finally {
      await Promise.all([endless.close(), trickle.close(), compressed.close()]);
    }
    expect((await fetch(`${p.agency.id}/healthz`)).status).toBe(200);
  });

  it('keeps a delivery queued through redirects, endless and compressed answers to POST /inbox, then delivers it once', async () => {
    const port = Number(new URL(p.partner.id).port);
    const dir = p.partner.config.dataDir;
    await cluster.stop(p.partner);
    const elsewhere = await serveLoopback((_req, res) => res.end('{}'));
    const bomb = gzipSync(Buffer.from(JSON.stringify({ receipt: 'x'.repeat(32 * MiB) })), { level: 9 });
    const answers: ((res: import('node:http').ServerResponse) => void)[] = [
      (res) => {
        res.writeHead(307, { location: `${elsewhere.url}/inbox` });
        res.end();
      },
      (res) => {
        res.writeHead(202, { 'content-type': 'application/json' });
        const block = Buffer.alloc(16 * KiB, 0x20);
        const pump = (): void => {
          while (!res.destroyed) if (!res.write(block)) return void res.once('drain', pump);
        };
        pump();
      },
      (res) => {
        res.writeHead(202, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(bomb);
      },
      (res) => {
        res.writeHead(202, { 'content-type': 'text/html' });
        res.end('<html><body>Welcome</body></html>');
      },
    ];
    const standIn = await serveLoopback((req, res, n) => {
      void readAll(req).then(() => answers[(n - 1) % answers.length]!(res));
    }, port);
      const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
    try {
      await waitFor(() => (standIn.hits() >= answers.length ? true : undefined), 15_000);
      const entry = (await p.agency.getOutbox(sent.id))!;
      expect(entry.state).toBe('queued');
      expect(elsewhere.hits()).toBe(0);
    } finally {
      await standIn.close();
      await elsewhere.close();
    }
    p.partner = await cluster.startDir(dir);
    await waitFor(async () => ((await p.agency.getOutbox(sent.id))?.state === 'delivered' ? true : undefined), 20_000);
    expect((await p.partner.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
    const attempts = (await p.agency.store.getOutbox(sent.id))!.attempts;
    expect(attempts).toBeGreaterThanOrEqual(answers.length + 1);
  });
});
