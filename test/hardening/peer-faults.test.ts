/**
 * Peers that fail (docs/attacks.md, Faults): down for longer than the retry budget, back but
 * overloaded, a black hole that accepts connections and never answers, and answers that are not
 * protocol answers. Each message ends in exactly one state; the peer sees no retry storm; other
 * peers are not held back.
 */
import { createServer as createTcpServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../../packages/node/test/harness/cluster.js';
import { readAll, readWholeAudit, scrapeMetric, serveLoopback, sleep } from './helpers.js';

async function stateOf(node: RunningNode, id: string) {
  return (await node.store.getOutbox(id))?.state;
}

async function until(node: RunningNode, id: string, state: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => ((await stateOf(node, id)) === state ? true : undefined), timeoutMs, 10);
}

/** Requests seen by a stand-in, per second of a phase: the peer's view of a retry storm. */
function perSecond(times: number[], from: number, to: number): number[] {
  const out: number[] = [];
  for (let t = from; t + 1000 <= to; t += 250) out.push(times.filter((x) => x >= t && x < t + 1000).length);
  return out;
}

describe('a peer down for longer than the retry budget', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('fails the message once the budget is spent, reports it, and does not retry it when the peer is back', async () => {
    const agency = await cluster.start({
      name: 'Centre d’accueil Exemple',
      country: 'BE',
      config: { outbox: { maxAttempts: 4, backoffBaseMs: 40, backoffCapMs: 160, breakerThreshold: 100 } },
    });
    const partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consent = await recordConsent(agency, [partner.id]);
    const port = Number(new URL(partner.id).port);
    await cluster.stop(partner);

    const failed: string[] = [];
    agency.events.on('outbox.failed', (e) => failed.push(`${e.messageId} ${e.code}`));
    const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await until(agency, sent.id, 'failed');
    await waitFor(() => (failed.length > 0 ? true : undefined));
    const entry = (await agency.store.getOutbox(sent.id))!;
    expect(entry.attempts).toBe(4);
    expect(entry.lastError).toMatch(/^PEER_UNREACHABLE: Gave up after 4 attempts/);
    expect(failed).toEqual([`${sent.id} PEER_UNREACHABLE`]);
    expect((await readWholeAudit(agency.store)).filter((e) => e.kind === 'outbox.failed' && e.fields.messageId === sent.id)).toHaveLength(1);
    expect(await scrapeMetric(agency, 'passerelle_deliveries_total', { outcome: 'failed' })).toBe(1);
    expect(await scrapeMetric(agency, 'passerelle_outbox_messages', { state: 'failed' })).toBe(1);
    const token = (await agency.createToken('caseworker', 'Logiciel de suivi des dossiers')).secret;
    const view = (await (await fetch(`${agency.id}/api/v1/outbox/${sent.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { state: string };
    expect(view.state).toBe('failed');

    // The peer comes back: a final state is final.
    const back = await serveLoopback((req, res) => void readAll(req).then(() => res.writeHead(503).end()), port);
    try {
      await sleep(800);
      expect(back.hits()).toBe(0);
      expect(await stateOf(agency, sent.id)).toBe('failed');
    } finally {
      await back.close();
    }
  });
});

describe('a backlog after an outage', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('reaches the peer without a retry storm: the circuit opens, retries are jittered, Retry-After is respected, and each message is delivered once', async () => {
    const agency = await cluster.start({
      name: 'Centre d’accueil Exemple',
      country: 'BE',
      config: { outbox: { backoffBaseMs: 100, backoffCapMs: 1500, breakerThreshold: 3, breakerCooldownMs: 400 } },
    });
    let partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consent = await recordConsent(agency, [partner.id]);
    const port = Number(new URL(partner.id).port);
    const dir = partner.config.dataDir;
    await cluster.stop(partner);

    // Down: the peer's address resets every connection. Then overloaded: 503 with Retry-After: 1.
    let phase: 'down' | 'overloaded' = 'down';
    const seen: { at: number; digest: string; phase: string }[] = [];
    const standIn = await serveLoopback((req, res) => {
      seen.push({ at: Date.now(), digest: String(req.headers['content-digest']), phase });
      if (phase === 'down') return void req.socket.destroy();
      void readAll(req).then(() => res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' }).end('busy'));
    }, port);

    const ids: string[] = [];
    const downFrom = Date.now();
    for (let i = 0; i < 20; i++) ids.push((await agency.send(referralInput(partner.id, agreementId, consent.id))).id);
    await sleep(2_000);
    const downTo = Date.now();
    // While down: after three failures the circuit opens and the peer sees only its trials.
    const down = seen.filter((s) => s.phase === 'down').map((s) => s.at);
    expect(Math.max(...perSecond(down, downFrom + 1000, downTo))).toBeLessThanOrEqual(6);
    // And the messages waiting are spread out in time, not due together.
    const due = (await agency.store.listOutbox({ state: 'queued' })).map((e) => e.nextAttemptAt);
    expect(new Set(due).size).toBeGreaterThanOrEqual(Math.floor(due.length * 0.8));

    phase = 'overloaded';
    const overloadedFrom = Date.now();
    await sleep(2_200);
    const overloadedTo = Date.now();
    const overloaded = seen.filter((s) => s.phase === 'overloaded');
    expect(overloaded.length).toBeGreaterThan(0);
    // Retry-After: 1 is honoured message by message...
    const byMessage = new Map<string, number[]>();
    for (const s of overloaded) byMessage.set(s.digest, [...(byMessage.get(s.digest) ?? []), s.at]);
    for (const times of byMessage.values()) for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
    // ...so the peer sees at most one request per message per second.
    expect(Math.max(...perSecond(overloaded.map((s) => s.at), overloadedFrom, overloadedTo))).toBeLessThanOrEqual(ids.length + 2);
    await standIn.close();

    partner = await cluster.startDir(dir);
    await agency.waitForOutbox(20_000);
    for (const id of ids) expect(await stateOf(agency, id)).toBe('delivered');
    expect((await partner.listInbox()).map((m) => m.id).sort()).toEqual([...ids].sort());
  });
});

describe('a black-hole peer', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('accepts connections and never answers: its messages wait, deliveries to other peers keep their latency', async () => {
    const agency = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE', config: { limits: { outboundTimeoutMs: 1500 } } });
    const partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    const hole = await cluster.start({ name: 'Agence transfrontalière Exemple', country: 'FR' });
    await pinEachOther(agency, partner);
    await pinEachOther(agency, hole);
    const toPartner = await coSign(agency, partner);
    const toHole = await coSign(agency, hole);
    const partnerConsent = (await recordConsent(agency, [partner.id])).id;
    const holeConsent = (await recordConsent(agency, [hole.id], { subject: 'case-be-2026-0077' })).id;

    const latency = async (): Promise<number> => {
      const started = performance.now();
      const sent = await agency.send(referralInput(partner.id, toPartner, partnerConsent));
      await until(agency, sent.id, 'delivered');
      return performance.now() - started;
    };
    const baseline: number[] = [];
    for (let i = 0; i < 8; i++) baseline.push(await latency());

    const port = Number(new URL(hole.id).port);
    await cluster.stop(hole);
    const sockets: Socket[] = [];
    const blackHole = createTcpServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => blackHole.listen(port, '127.0.0.1', () => r()));
    try {
      const stuck: string[] = [];
      for (let i = 0; i < 30; i++) {
        stuck.push((await agency.send(referralInput(hole.id, toHole, holeConsent, { body: { subject: 'case-be-2026-0077', services: ['legal'], urgency: 'routine', reasonCode: 'orientation' } }))).id);
      }
      const loaded: number[] = [];
      for (let i = 0; i < 8; i++) loaded.push(await latency());
      // Each attempt at the black hole lasts 1.5 s: a delivery queued behind one would show it.
      expect(Math.max(...loaded)).toBeLessThan(Math.max(500, 4 * Math.max(...baseline)));
      expect(sockets.length).toBeGreaterThan(0);
      expect(sockets.length).toBeLessThanOrEqual(30);
      for (const id of stuck) expect(await stateOf(agency, id)).toBe('queued');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => blackHole.close(() => r()));
    }
  });
});

describe('answers that are not protocol answers', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('retries through 5xx, HTML, empty bodies and garbage, never counts one as delivered or rejected, then delivers once', async () => {
    const agency = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE', config: { outbox: { breakerThreshold: 100 } } });
    let partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consent = await recordConsent(agency, [partner.id]);
    const port = Number(new URL(partner.id).port);
    const dir = partner.config.dataDir;
    await cluster.stop(partner);

    const html = '<!doctype html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>';
    const answers: [number, Record<string, string>, string][] = [
      [502, { 'content-type': 'text/html' }, html],
      [503, { 'content-type': 'text/html', 'retry-after': '0' }, html],
      [500, { 'content-type': 'application/problem+json' }, JSON.stringify({ type: 'urn:passerelle:error:INTERNAL', title: 'x', status: 500, code: 'INTERNAL' })],
      [200, { 'content-type': 'text/html' }, html],
      [202, {}, ''],
      [204, {}, ''],
      [200, { 'content-type': 'application/json' }, '{"receipt":'],
      [202, { 'content-type': 'application/json' }, JSON.stringify({ receipt: null })],
      [404, { 'content-type': 'text/html' }, html],
      [400, { 'content-type': 'text/plain' }, 'Bad Request'],
      [403, { 'content-type': 'application/problem+json' }, JSON.stringify({ code: 'NOT_A_CODE', status: 403 })],
      [401, { 'content-type': 'application/json' }, '[]'],
      [302, { location: 'http://127.0.0.1:9/inbox' }, ''],
      [200, { 'content-type': 'application/octet-stream' }, '\u0000\u0001\u0002\u00ff'],
    ];
    const standIn = await serveLoopback((req, res, n) => {
      void readAll(req).then(() => {
        const [status, headers, body] = answers[(n - 1) % answers.length]!;
        res.writeHead(status, headers).end(body);
      });
    }, port);
    const codes: string[] = [];
    agency.events.on('outbox.retry', (e) => codes.push(e.code));
    const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
    try {
      await waitFor(() => (standIn.hits() >= answers.length ? true : undefined), 20_000);
      await sleep(50);
      expect(await stateOf(agency, sent.id)).toBe('queued');
      expect(codes.slice(0, answers.length).every((c) => ['PEER_RESPONSE_INVALID', 'RECEIPT_INVALID', 'INTERNAL'].includes(c))).toBe(true);
    } finally {
      await standIn.close();
    }
    partner = await cluster.startDir(dir);
    await until(agency, sent.id, 'delivered', 20_000);
    const audit = await readWholeAudit(agency.store);
    expect(audit.filter((e) => e.fields.messageId === sent.id).map((e) => e.kind)).toEqual(['message.sent', 'message.delivered']);
    expect((await partner.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
  });
});
