/**
 * Shared tooling for the node hardening suite (docs/attacks.md, Transport, Faults and Load):
 * nodes in child processes that can be killed at a named point, raw sockets for what fetch will
 * not send, stand-in peers on loopback, a tripwire on outbound connections, consistency checks
 * of stores and audit logs, and a flooder that runs on its own thread.
 *
 * Everything listens and connects on 127.0.0.1 only. Organisations and people are fictional.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, Socket, isIP, type NetConnectOpts } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import {
  buildReferral,
  currentEncryptionKey,
  peekCompactPayload,
  seal,
  type SigningKeyPair,
} from '@passerelle/protocol';
import type { AuditRecord, RunningNode, Store } from '@passerelle/node';
import { contentDigest } from '../../packages/node/src/http/content-digest.js';
import { signRequest } from '../../packages/node/src/http/message-signatures.js';
import { auditLeafHash } from '../../packages/node/src/store/audit-leaf.js';
import { coSign, pinEachOther, recordConsent, referralInput, type Cluster, type NodeSpec } from '../../packages/node/test/harness/cluster.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const NODE_ENTRY = join(ROOT, 'packages/node/src/bin/node-process.ts');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Nodes in child processes

export interface NodeProcess {
  child: ChildProcess;
  id: string;
  url: string;
  /** Resolves when the process has exited, with its signal (SIGKILL for a crash point). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Starts `node-process <dir>`; `env` adds variables such as PASSERELLE_FAULT. */
export function spawnNode(dir: string, env: Record<string, string> = {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['--conditions=@passerelle/source', '--import', 'tsx', NODE_ENTRY, dir], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('"ready":true')) return;
      clearTimeout(timer);
      const ready = JSON.parse(line) as { id: string; url: string };
      resolvePromise({ child, id: ready.id, url: ready.url, exited, stderr: () => stderr });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`node exited (${code ?? signal}) before it was ready: ${stderr}`));
    });
  });
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export async function kill9(p: NodeProcess): Promise<void> {
  if (running(p.child)) p.child.kill('SIGKILL');
  await p.exited;
}

export async function stopProcess(p: NodeProcess): Promise<void> {
  if (running(p.child)) p.child.kill('SIGTERM');
  await p.exited;
}

// ---------------------------------------------------------------------------------------------
// Two organisations that can exchange referrals

export interface Pair {
  agency: RunningNode;
  partner: RunningNode;
  agreementId: string;
  consentId: string;
}

export async function startPair(cluster: Cluster, agency: Partial<NodeSpec> = {}, partner: Partial<NodeSpec> = {}): Promise<Pair> {
  const a = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE', ...agency });
  const b = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN', ...partner });
  await pinEachOther(a, b);
  const agreementId = await coSign(a, b);
  const consentId = (await recordConsent(a, [b.id])).id;
  return { agency: a, partner: b, agreementId, consentId };
}

export interface SealedMessage {
  id: string;
  jwe: string;
  digest: string;
  jwt: string;
}

/** A referral sealed by `from` to `to` the way the outbox would, without queueing it. */
export async function sealReferral(from: RunningNode, to: RunningNode, agreementId: string, consentId: string, extra: Record<string, unknown> = {}): Promise<SealedMessage> {
  const input = referralInput(to.id, agreementId, consentId, extra);
  const message = buildReferral({
    ...input,
    from: from.id,
    consentRecord: (await from.store.getConsent(consentId))!.jws,
    body: input.body as never,
    data: input.data as never,
  } as Parameters<typeof buildReferral>[0]);
  const enc = currentEncryptionKey(to.identity.document);
  const sealed = await seal(message, { signingKey: from.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
  return { id: message.header.id, jwe: sealed.jwe, digest: sealed.digest, jwt: sealed.jwt };
}

/** Peer-API request headers (Content-Digest and an RFC 9421 signature), optionally dated. */
export async function signedHeaders(input: {
  url: string;
  body: string | Uint8Array;
  key: SigningKeyPair;
  sender?: string;
  created?: number;
  contentType?: string;
}): Promise<Record<string, string>> {
  const bytes = typeof input.body === 'string' ? new TextEncoder().encode(input.body) : input.body;
  const headers: Record<string, string> = {
    'content-type': input.contentType ?? 'application/jose',
    'content-digest': contentDigest(bytes),
    ...(input.sender ? { 'passerelle-sender': input.sender } : {}),
  };
  const signature = await signRequest({ method: 'POST', url: input.url, headers, key: input.key, ...(input.created !== undefined ? { created: input.created } : {}) });
  return { ...headers, ...signature };
}

/** POSTs with headers prepared beforehand (a captured request, replayed byte for byte). */
export async function postRaw(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; json: Record<string, unknown> | undefined; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers };
}

// ---------------------------------------------------------------------------------------------
// Raw sockets

export interface RawExchange {
  /** Everything the server sent back. */
  response: string;
  /** Bytes of request body the client managed to write before the server closed. */
  bodyBytesWritten: number;
  /** Milliseconds from connecting until the server answered (first byte), or undefined. */
  answeredAfterMs: number | undefined;
  /** Milliseconds from connecting until the connection closed. */
  closedAfterMs: number;
  /** Status line of the first response. */
  status: number | undefined;
}

export interface RawPlan {
  port: number;
  /** Request head (and anything to send at once). */
  head: string;
  /** Bytes to dribble after the head, one per `everyMs`, until the server closes. */
  dribble?: { chunk: string; everyMs: number };
  /** Body bytes to stream after the head as fast as the socket takes them, up to this many. */
  stream?: { total: number; block?: Buffer };
  /** Give up (and close from our side) after this long. */
  timeoutMs: number;
}

/** Speaks HTTP/1.1 by hand, for requests fetch refuses to send (ambiguous framing, slow writers). */
export function rawExchange(plan: RawPlan): Promise<RawExchange> {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const socket = connect(plan.port, '127.0.0.1');
    let response = '';
    let answeredAfterMs: number | undefined;
    let bodyBytesWritten = 0;
    let dribbler: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => socket.destroy(), plan.timeoutMs);
    socket.on('data', (d: Buffer) => {
      answeredAfterMs ??= Date.now() - started;
      response += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      if (dribbler) clearInterval(dribbler);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(response)?.[1];
      resolvePromise({ response, bodyBytesWritten, answeredAfterMs, closedAfterMs: Date.now() - started, status: status ? Number(status) : undefined });
    });
    socket.write(plan.head);
    if (plan.dribble) {
      const { chunk, everyMs } = plan.dribble;
      dribbler = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(chunk);
      }, everyMs);
    }
    if (plan.stream) {
      const { total, block = Buffer.alloc(64 * 1024, 0x41) } = plan.stream;
      const pump = (): void => {
        while (!socket.destroyed && socket.writable && bodyBytesWritten < total) {
          bodyBytesWritten += block.length;
          if (!socket.write(block)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }
  });
}

/** The JSON body of a raw HTTP/1.1 response (fixed length or chunked). */
export function rawBody(response: string): Record<string, unknown> | undefined {
  const at = response.indexOf('\r\n\r\n');
  if (at < 0) return undefined;
  let body = response.slice(at + 4);
  if (/\r\ntransfer-encoding: chunked/i.test(response.slice(0, at))) {
    let out = '';
    while (body.length > 0) {
      const eol = body.indexOf('\r\n');
      const size = Number.parseInt(body.slice(0, eol), 16);
      if (!size) break;
      out += body.slice(eol + 2, eol + 2 + size);
      body = body.slice(eol + 4 + size);
    }
    body = out;
  }
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Stand-ins on loopback

export interface Loopback {
  server: Server;
  port: number;
  url: string;
  hits: () => number;
  close: () => Promise<void>;
}

/** An HTTP server on 127.0.0.1 (a chosen port, or an ephemeral one). */
export async function serveLoopback(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void, port = 0): Promise<Loopback> {
  let n = 0;
  const server = createHttpServer((req, res) => handler(req, res, ++n));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  const bound = (server.address() as { port: number }).port;
  return {
    server,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    hits: () => n,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Reads a request body completely (stand-ins that answer after the request arrived). */
export function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((r) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => r(Buffer.concat(chunks)));
    req.on('error', () => r(Buffer.concat(chunks)));
  });
}

// ---------------------------------------------------------------------------------------------
// Outbound tripwire

export interface Tripwire {
  /** Destinations outside 127.0.0.1 that something tried to connect to (and was stopped). */
  violations: string[];
  /** Every destination address a socket was about to connect to. */
  attempts: string[];
  restore: () => void;
}

const LOOPBACK_ONLY = new Set(['127.0.0.1', '::ffff:127.0.0.1']);

/**
 * Stops, inside this process, any TCP connection to an address other than 127.0.0.1: a safety net
 * for the tests that feed the address guard private and public addresses. If the guard let one
 * through, the socket fails here instead of reaching the network, and the address is recorded.
 */
export function installTripwire(): Tripwire {
  const violations: string[] = [];
  const attempts: string[] = [];
  const original = Socket.prototype.connect;
  const check = (address: string): Error | undefined => {
    attempts.push(address);
    if (LOOPBACK_ONLY.has(address)) return undefined;
    violations.push(address);
    return Object.assign(new Error(`tripwire: connection to ${address} stopped`), { code: 'ECONNREFUSED' });
  };
  Socket.prototype.connect = function patched(this: Socket, ...args: unknown[]) {
    // net.connect hands over its normalised [options, callback] array; direct calls pass options.
    const options: unknown = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    if (options && typeof options === 'object' && (options as NetConnectOpts as { path?: string }).path === undefined) {
      type Lookup = (hostname: unknown, lookupOptions: unknown, callback: (...r: unknown[]) => void) => void;
      const opts = options as { host?: string; lookup?: Lookup };
      const host = (opts.host ?? 'localhost').replace(/^\[|\]$/g, '');
      if (isIP(host) !== 0) {
        const refused = check(host);
        if (refused) {
          process.nextTick(() => this.destroy(refused));
          return this;
        }
      } else if (typeof opts.lookup === 'function') {
        const inner = opts.lookup;
        opts.lookup = (hostname: unknown, lookupOptions: unknown, callback: (...r: unknown[]) => void) => {
          inner(hostname, lookupOptions, (err: unknown, address: unknown, family: unknown) => {
            if (err) return callback(err, address, family);
            const list = Array.isArray(address) ? (address as { address: string }[]).map((a) => a.address) : [String(address)];
            for (const a of list) {
              const refused = check(a);
              if (refused) return callback(refused, '', 4);
            }
            return callback(null, address, family);
          });
        };
      } else {
        // A name resolved by the system resolver: only "localhost" is expected in these tests.
        const refused = host === 'localhost' ? undefined : check(host);
        if (refused) {
          process.nextTick(() => this.destroy(refused));
          return this;
        }
      }
    }
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof Socket.prototype.connect;
  return { violations, attempts, restore: () => void (Socket.prototype.connect = original) };
}

// ---------------------------------------------------------------------------------------------
// Consistency of stores and audit logs

/** Indices 0..n-1 without gaps, and every leaf hash recomputes from its record. */
export function checkAuditLog(records: readonly AuditRecord[]): void {
  records.forEach((r, i) => {
    if (r.index !== i) throw new Error(`audit log: index ${r.index} at position ${i}`);
    const expected = auditLeafHash({ kind: r.kind, fields: r.fields, at: r.at, index: r.index });
    if (expected !== r.leafHash) throw new Error(`audit log: leaf ${i} does not match its record`);
  });
}

export async function readWholeAudit(store: Store): Promise<AuditRecord[]> {
  const size = await store.auditSize();
  const out: AuditRecord[] = [];
  for (let from = 0; from < size; from += 5000) out.push(...(await store.readAudit(from, Math.min(size, from + 5000))));
  return out;
}

/**
 * The invariant of spec/node.md §4.5 for `ids` sent from `sender` to `receiver`: each one
 * delivered once, stored once, accepted once in the receiver's audit log at the index its
 * receipt names, the sender holding exactly the receipt the receiver stored, and both audit logs
 * intact. Returns the two audit logs for further checks.
 */
export async function checkExactlyOnce(sender: Store, receiver: Store, ids: readonly string[]): Promise<{ senderAudit: AuditRecord[]; receiverAudit: AuditRecord[] }> {
  const senderAudit = await readWholeAudit(sender);
  const receiverAudit = await readWholeAudit(receiver);
  checkAuditLog(senderAudit);
  checkAuditLog(receiverAudit);
  const accepted = new Map<string, AuditRecord[]>();
  for (const r of receiverAudit) {
    if (r.kind !== 'message.received') continue;
    const id = String(r.fields.messageId);
    accepted.set(id, [...(accepted.get(id) ?? []), r]);
  }
  const delivered = new Map<string, number>();
  const queued = new Map<string, number>();
  for (const r of senderAudit) {
    const id = String(r.fields.messageId);
    if (r.kind === 'message.delivered') delivered.set(id, (delivered.get(id) ?? 0) + 1);
    if (r.kind === 'message.sent') queued.set(id, (queued.get(id) ?? 0) + 1);
  }
  const inbox = await receiver.listInbox();
  for (const id of ids) {
    const out = await sender.getOutbox(id);
    if (out?.state !== 'delivered') throw new Error(`${id}: outbox state ${out?.state}`);
    const stored = inbox.filter((m) => m.id === id);
    if (stored.length !== 1) throw new Error(`${id}: stored ${stored.length} times`);
    if (stored[0]!.receipt !== out.receipt) throw new Error(`${id}: the sender holds another receipt than the one stored`);
    if (stored[0]!.digest !== out.digest) throw new Error(`${id}: stored bytes differ from those sent`);
    const events = accepted.get(id) ?? [];
    if (events.length !== 1) throw new Error(`${id}: accepted ${events.length} times in the audit log`);
    const receipt = peekCompactPayload(out.receipt!) as { log?: { index?: number } };
    if (receipt.log?.index !== events[0]!.index) throw new Error(`${id}: receipt names log index ${receipt.log?.index}, event is at ${events[0]!.index}`);
    if (delivered.get(id) !== 1) throw new Error(`${id}: ${delivered.get(id) ?? 0} message.delivered events`);
    if (queued.get(id) !== 1) throw new Error(`${id}: ${queued.get(id) ?? 0} message.sent events`);
  }
  return { senderAudit, receiverAudit };
}

// ---------------------------------------------------------------------------------------------
// Flooding from another thread

export interface FloodTemplate {
  /** Label the results are counted under. */
  kind: string;
  headers: Record<string, string>;
  body: string;
}

export interface FloodResult {
  sent: number;
  elapsedMs: number;
  /** `${kind} ${status}` → count; `${kind} error` for connections the server closed. */
  outcomes: Record<string, number>;
}

// Plain JavaScript run with `eval` in a worker thread, so that the flooder does not share the
// node's event loop and needs no TypeScript loader. Bounded by count and by time.
const FLOOD_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const http = require('node:http');
const { port, path, templates, maxRequests, maxMs, concurrency } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const outcomes = {};
let sent = 0;
const started = Date.now();
const count = (key) => { outcomes[key] = (outcomes[key] || 0) + 1; };
function one(t) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { ...t.headers, 'content-length': Buffer.byteLength(t.body) } }, (res) => {
      res.resume();
      res.on('end', () => { count(t.kind + ' ' + res.statusCode); resolve(); });
      res.on('error', () => { count(t.kind + ' error'); resolve(); });
    });
    req.on('error', () => { count(t.kind + ' error'); resolve(); });
    req.end(t.body);
  });
}
async function loop() {
  while (sent < maxRequests && Date.now() - started < maxMs) {
    const t = templates[sent % templates.length];
    sent++;
    await one(t);
  }
}
Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
  agent.destroy();
  parentPort.postMessage({ sent, elapsedMs: Date.now() - started, outcomes });
});
`;

/** Floods `port` with the templates in turn from a worker thread; resolves with what happened. */
export function flood(options: { port: number; path?: string; templates: FloodTemplate[]; maxRequests: number; maxMs: number; concurrency?: number }): Promise<FloodResult> {
  const worker = new Worker(FLOOD_SOURCE, {
    eval: true,
    workerData: { port: options.port, path: options.path ?? '/inbox', templates: options.templates, maxRequests: options.maxRequests, maxMs: options.maxMs, concurrency: options.concurrency ?? 16 },
  });
  return new Promise((resolvePromise, reject) => {
    worker.once('message', (result: FloodResult) => {
      void worker.terminate();
      resolvePromise(result);
    });
    worker.once('error', reject);
  });
}

/** Sums flood outcomes by kind, by status, or both. */
export function outcomeCount(result: FloodResult, kind?: string, status?: number | 'error'): number {
  return Object.entries(result.outcomes)
    .filter(([key]) => {
      const [k, s] = key.split(' ');
      return (kind === undefined || k === kind) && (status === undefined || s === String(status));
    })
    .reduce((n, [, v]) => n + v, 0);
}

/** Value of one series of a node's Prometheus metrics, 0 when absent. */
export async function scrapeMetric(node: RunningNode, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await node.metrics.registry.render();
  const wanted = Object.entries(labels);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// A gate in front of a node: holds chosen requests in flight

export interface HeldRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** The held client's response; it may have given up (timeout) by the time the request is released. */
  res: ServerResponse;
}

export interface GateProxy extends Loopback {
  held: HeldRequest[];
  /** Holds the next `n` POST requests instead of forwarding them. */
  holdNext: (n: number) => void;
  /** Forwards a held request now; resolves with the node's answer (also passed on if the client still waits). */
  release: (request: HeldRequest) => Promise<{ status: number; body: string }>;
  /** Drops the held client's connection (its attempt fails at once); the request can still be released. */
  abort: (request: HeldRequest) => void;
}

/** A loopback proxy on `port` forwarding to a node listening on `target`, able to hold requests. */
export async function gateProxy(port: number, target: number): Promise<GateProxy> {
  const held: HeldRequest[] = [];
  let toHold = 0;
  const forward = (r: HeldRequest): Promise<{ status: number; body: string }> =>
    new Promise((resolvePromise, reject) => {
      const headers = { ...r.headers };
      delete headers.connection;
      const out = httpRequest({ host: '127.0.0.1', port: target, method: r.method, path: r.url, headers }, (answer) => {
        void readAll(answer).then((body) => {
          if (!r.res.destroyed && !r.res.writableEnded) {
            r.res.writeHead(answer.statusCode ?? 502, answer.headers);
            r.res.end(body);
          }
          resolvePromise({ status: answer.statusCode ?? 0, body: body.toString('utf8') });
        });
      });
      out.on('error', reject);
      out.end(r.body);
    });
  const proxy = await serveLoopback((req, res) => {
    void readAll(req).then((body) => {
      const r: HeldRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, res };
      if (r.method === 'POST' && toHold > 0) {
        toHold -= 1;
        held.push(r);
        return;
      }
      forward(r).catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
      });
    });
  }, port);
  return { ...proxy, held, holdNext: (n) => void (toHold = n), release: forward, abort: (r) => void r.res.socket?.destroy() };
}

/** A UUID version 7 (RFC 9562 §5.7), as message ids are. */
export function uuid7(at = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(at, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
