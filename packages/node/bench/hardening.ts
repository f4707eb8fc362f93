/**
 * `pnpm bench:hardening`: a legitimate peer's delivery latency to a node's inbox, without and then
 * during floods of well-formed but bogus requests (docs/attacks.md, Load). Prints p50 and p99 of
 * each phase, the ratio of the flooded p99 to the unloaded one, what the flood got back, and how
 * many bogus requests reached decryption (the node's own inbox counter, which counts only requests
 * that got past authentication), and writes bench-results/hardening.json. The target is a flooded
 * p99 within twice the unloaded one.
 *
 * The receiving node and the legitimate peer run in this process; the flooder is this file again
 * in a child process, so it competes for the machine but not for the node's event loop. The flood
 * is bounded by count and by time. Everything stays on 127.0.0.1.
 *
 * The legitimate peer runs on a worker thread of this process (its own event loop, as if on another
 * machine): it POSTs sealed referrals, signed beforehand with Content-Digest and an RFC 9421
 * signature, one at a time, every BENCH_INTERVAL_MS; latency is from request to signed receipt.
 *
 * Two floods by default: one paced at 1000 requests per second, one as fast as the flooder goes.
 *
 * Rounds: each round measures the unloaded phase, then each flood; a flood's p99 is compared with
 * the unloaded phase of its own round and the median ratio over the rounds is reported (a p99 on a
 * shared 2-core machine moves between minutes; with 600 samples it is the sixth-worst delivery).
 *
 * Environment: BENCH_ROUNDS (3), BENCH_SAMPLES (600 per phase), BENCH_INTERVAL_MS (5), BENCH_FLOOD_MS (8000),
 * BENCH_FLOOD_MAX (20000), BENCH_FLOOD_CONCURRENCY (32), BENCH_FLOOD_RATES (1000,0).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { buildReferral, currentEncryptionKey, generateSigningKey, seal, type SigningKeyPair } from '@passerelle/protocol';
import { contentDigest } from '../src/http/content-digest.js';
import { signRequest } from '../src/http/message-signatures.js';
import type { RunningNode } from '../src/running-node.js';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput } from '../test/harness/cluster.js';

const FLOOD_ARG = '--flood';

interface FloodSpec {
  port: number;
  /** Requests per second across all connections; 0 for as fast as possible. */
  ratePerSecond?: number;
  templates: { kind: string; headers: Record<string, string>; body: string }[];
  maxRequests: number;
  maxMs: number;
  concurrency: number;
}

interface FloodResult {
  sent: number;
  elapsedMs: number;
  outcomes: Record<string, number>;
  /** The flooder's own CPU use while flooding, in cores. */
  cpuCores: number;
}

/**
 * The flooder (child process): every template in turn, `concurrency` connections at a time, until
 * a bound is hit. Requests are serialised once and written on raw keep-alive sockets, responses
 * framed by Content-Length: on this 2-core machine the flooder shares the CPU with the node (a real
 * attacker would not), so it is kept as cheap as an attacker's tool would be, and its own CPU use
 * is reported beside the figures.
 */
async function flood(spec: FloodSpec): Promise<void> {
  const outcomes: Record<string, number> = {};
  const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
  const wire = spec.templates.map((t) => {
    const headers = { ...t.headers, host: `127.0.0.1:${spec.port}`, 'content-length': String(Buffer.byteLength(t.body)) };
    const head = `POST /inbox HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    return { kind: t.kind, bytes: Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(t.body)]) };
  });
  let sent = 0;
  process.stdout.write(`${JSON.stringify({ flooding: true })}\n`);
  const started = Date.now();
  const cpuBefore = process.cpuUsage();
  const lane = async () => {
    let socket: Socket | undefined;
    let pending: ((status: number, close: boolean) => void) | undefined;
    let buffered: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      buffered = buffered.subarray(end + 4 + length);
      const done = pending;
      pending = undefined;
      done?.(Number(head.slice(9, 12)), /\r\nconnection: *close/i.test(head));
    };
    const open = () =>
      new Promise<Socket>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: spec.port }, () => resolve(s));
        s.setNoDelay(true);
        s.on('data', onData);
        s.on('error', () => undefined);
        s.on('close', () => {
          if (socket === s) socket = undefined;
          buffered = Buffer.alloc(0);
          const done = pending;
          pending = undefined;
          done?.(0, true);
        });
      });
    while (sent < spec.maxRequests && Date.now() - started < spec.maxMs) {
      const n = sent++;
      if (spec.ratePerSecond) {
        const wait = started + (n / spec.ratePerSecond) * 1000 - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const t = wire[n % wire.length]!;
      socket ??= await open();
      const current = socket;
      const [status, close] = await new Promise<[number, boolean]>((resolve) => {
        pending = (st, cl) => resolve([st, cl]);
        current.write(t.bytes);
      });
      count(`${t.kind} ${status === 0 ? 'error' : status}`);
      if (close) {
        current.destroy();
        if (socket === current) socket = undefined;
      }
    }
    socket?.destroy();
  };
  await Promise.all(Array.from({ length: spec.concurrency }, lane));
  const elapsedMs = Date.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const result: FloodResult = { sent, elapsedMs, outcomes, cpuCores: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100) / 100 };
  process.stdout.write(`${JSON.stringify({ result })}\n`);
}

// The legitimate peer's loop, run with `eval` on a worker thread. Each phase's requests are handed
// over first (`load`), so they live in the worker's heap rather than the node's; then `run` POSTs
// them in turn, `intervalMs` apart, until told to stop; answers other than 202 are reported.
const PEER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let stop = false;
let loaded = [];
parentPort.on('message', async (msg) => {
  if (msg.stop) { stop = true; return; }
  if (msg.close) { agent.destroy(); parentPort.close(); return; }
  if (msg.load) { loaded = msg.load; parentPort.postMessage({ loaded: loaded.length }); return; }
  stop = false;
  const latencies = [];
  const requests = loaded;
  loaded = [];
  for (const r of requests) {
    if (stop) break;
    const started = performance.now();
    const status = await new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: workerData.port, path: '/inbox', method: 'POST', agent, headers: { ...r.headers, 'content-length': Buffer.byteLength(r.body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', () => resolve(0));
      req.end(r.body);
    });
    if (status !== 202) { parentPort.postMessage({ failed: status }); return; }
    latencies.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, workerData.intervalMs));
  }
  parentPort.postMessage({ latencies });
});
`;

class LegitimatePeer {
  readonly #worker: Worker;
  constructor(port: number, intervalMs: number) {
    this.#worker = new Worker(PEER_SOURCE, { eval: true, workerData: { port, intervalMs } });
  }

  /** Hands the next phase's requests to the worker; the caller drops its own copies. */
  load(requests: { headers: Record<string, string>; body: string }[]): Promise<void> {
    return new Promise((resolvePromise) => {
      this.#worker.once('message', () => resolvePromise());
      this.#worker.postMessage({ load: requests });
    });
  }

  /** Sends the loaded requests in turn; stops early once `done()` turns true. Resolves with the latencies. */
  run(done: () => boolean): Promise<number[]> {
    return new Promise((resolvePromise, reject) => {
      const poll = setInterval(() => {
        if (done()) this.#worker.postMessage({ stop: true });
      }, 5);
      this.#worker.once('message', (msg: { latencies?: number[]; failed?: number }) => {
        clearInterval(poll);
        if (msg.latencies) resolvePromise(msg.latencies);
        else reject(new Error(`a legitimate delivery was answered ${msg.failed}`));
      });
      this.#worker.postMessage({ run: true });
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return { n: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? Number.NaN) };
}

async function inboxCounter(node: RunningNode, result: string): Promise<number> {
  const text = await node.metrics.registry.render();
  return text
    .split('\n')
    .filter((l) => l.startsWith('passerelle_inbox_total{') && l.includes(`result="${result}"`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function main(): Promise<void> {
  const samples = env('BENCH_SAMPLES', 600);
  const rounds = env('BENCH_ROUNDS', 3);
  const intervalMs = env('BENCH_INTERVAL_MS', 5);
  const floodMs = env('BENCH_FLOOD_MS', 8000);
  const floodMax = env('BENCH_FLOOD_MAX', 20_000);
  const floodConcurrency = env('BENCH_FLOOD_CONCURRENCY', 32);
  // Flood rates to run, requests per second; 0 floods as fast as the flooder can.
  const floodRates = (process.env.BENCH_FLOOD_RATES ?? '1000,0').split(',').map(Number);
  const log = (line: string) => process.stdout.write(`${line}\n`);

  const cluster = new Cluster();
  try {
    // The test harness's configuration: fast timers, logging off (a log line per refused request
    // would measure the log destination as much as the node).
    const agency = await cluster.start({ name: 'Centre d’accueil Exemple (BE)', country: 'BE' });
    // The legitimate peer sends more than the default allowance per second; the flood is not charged to it.
    const partner = await cluster.start({ name: 'Partenaire de réintégration Exemple (SN)', country: 'SN', config: { limits: { peerRateLimit: { burst: 100_000, perSecond: 100_000 } } } });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consentId = (await recordConsent(agency, [partner.id])).id;
    const inbox = `${partner.id}/inbox`;
    const consentRecord = (await agency.store.getConsent(consentId))!.jws;
    const enc = currentEncryptionKey(partner.identity.document);
    const sealOne = async () => {
      const input = referralInput(partner.id, agreementId, consentId);
      const message = buildReferral({ ...input, from: agency.id, consentRecord, body: input.body as never, data: input.data as never } as Parameters<typeof buildReferral>[0]);
      return (await seal(message, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } })).jwe;
    };
    const signed = async (jwe: string) => {
      const h: Record<string, string> = { 'content-type': 'application/jose', 'content-digest': contentDigest(new TextEncoder().encode(jwe)), 'passerelle-sender': agency.id };
      return { headers: { ...h, ...(await signRequest({ method: 'POST', url: inbox, headers: h, key: agency.identity.signingKey() })) }, body: jwe };
    };
    const port = Number(new URL(partner.id).port);
    const peer = new LegitimatePeer(port, intervalMs);
    // Each phase's deliveries are sealed and signed before the phase starts and handed to the peer's
    // worker: they are the peer's data, and a node does not hold another organisation's outgoing
    // messages in its heap (thousands of them held here would only slow this node's collector).
    const loadPhase = async (count: number) => {
      const requests = [];
      for (let i = 0; i < count; i++) requests.push(await signed(await sealOne()));
      await peer.load(requests);
    };
    // Warm-up; the unloaded phases run in the rounds below.
    await loadPhase(20);
    await peer.run(() => false);

    const stranger = await generateSigningKey();
    const key = agency.identity.signingKey();
    const bogusBody = await sealOne();
    const headers = async (k: SigningKeyPair, sender?: string, created?: number) => {
      const h: Record<string, string> = { 'content-type': 'application/jose', 'content-digest': contentDigest(new TextEncoder().encode(bogusBody)), ...(sender ? { 'passerelle-sender': sender } : {}) };
      return { ...h, ...(await signRequest({ method: 'POST', url: inbox, headers: h, key: k, ...(created !== undefined ? { created } : {}) })) };
    };
    const spec: FloodSpec = {
      port,
      maxRequests: floodMax,
      maxMs: floodMs,
      concurrency: floodConcurrency,
      templates: [
        { kind: 'unknown-key', headers: await headers(stranger), body: bogusBody },
        { kind: 'unknown-sender', headers: await headers(stranger, 'https://intrus.example.org'), body: bogusBody },
        { kind: 'unsigned', headers: { 'content-type': 'application/jose', 'content-digest': 'sha-256=:AAAA:' }, body: bogusBody },
        { kind: 'wrong-type', headers: { ...(await headers(key)), 'content-type': 'text/plain' }, body: bogusBody },
        { kind: 'forged-peer-kid', headers: await headers({ ...stranger, kid: key.kid }, agency.id), body: bogusBody },
        { kind: 'stale-capture', headers: await headers(key, agency.id, Math.floor(Date.now() / 1000) - 3600), body: bogusBody },
      ],
    };
    const specFile = join(tmpdir(), `passerelle-flood-${process.pid}.json`);
    const root = resolve(import.meta.dirname, '../../..');

    /** One flood from a child process, the legitimate peer delivering throughout. */
    const floodPhase = async (ratePerSecond: number, unloadedP99: number) => {
      await loadPhase(samples);
      writeFileSync(specFile, JSON.stringify({ ...spec, ratePerSecond }));
      const rejectedBefore = await inboxCounter(partner, 'rejected');
      const child = spawn(process.execPath, ['--conditions=@passerelle/source', '--import', 'tsx', resolve(import.meta.dirname, 'hardening.ts'), FLOOD_ARG, specFile], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let result: FloodResult | undefined;
      let flooding = false;
      const finished = new Promise<void>((r) => child.once('exit', () => r()));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const msg = JSON.parse(line) as { flooding?: boolean; result?: FloodResult };
        if (msg.flooding) flooding = true;
        if (msg.result) result = msg.result;
      });
      while (!flooding) await new Promise((r) => setTimeout(r, 5));
      const latencies = await peer.run(() => result !== undefined);
      await finished;
      if (!result) throw new Error('the flooder ended without a result');
      const l = summary(latencies);
      return {
        floodRatePerSecond: ratePerSecond === 0 ? 'as fast as the flooder can' : ratePerSecond,
        loadedMs: l,
        p99Ratio: Math.round((l.p99 / unloadedP99) * 100) / 100,
        flood: { sent: result.sent, elapsedMs: result.elapsedMs, flooderCpuCores: result.cpuCores, requestsPerSecond: Math.round((result.sent / result.elapsedMs) * 1000), outcomes: result.outcomes },
        bogusRequestsDecrypted: (await inboxCounter(partner, 'rejected')) - rejectedBefore,
      };
    };

    // Rounds of one unloaded phase then each flood: on a shared 2-core machine a p99 moves from one
    // minute to the next, so each flood is compared with the unloaded phase just before it, and
    // the median ratio over the rounds is the figure.
    const unloadedRounds = [];
    const phasesByRate = floodRates.map(() => [] as Awaited<ReturnType<typeof floodPhase>>[]);
    for (let r = 0; r < rounds; r++) {
      await loadPhase(samples);
      const u = summary(await peer.run(() => false));
      unloadedRounds.push(u);
      log(`round ${r + 1}/${rounds}: legitimate delivery, unloaded: p50 ${u.p50} ms  p99 ${u.p99} ms  (n=${u.n})`);
      for (const [i, rate] of floodRates.entries()) {
        const phase = await floodPhase(rate, u.p99);
        phasesByRate[i]!.push(phase);
        const l = phase.loadedMs;
        log(`  flood of ${phase.flood.sent} requests in ${phase.flood.elapsedMs} ms (${phase.flood.requestsPerSecond}/s${rate === 0 ? ', unpaced' : `, paced at ${rate}/s`}), concurrency ${floodConcurrency}, flooder CPU ${phase.flood.flooderCpuCores} cores`);
        log(`    legitimate delivery: p50 ${l.p50} ms  p99 ${l.p99} ms  (n=${l.n})  p99 ratio ${phase.p99Ratio}`);
        log(`    answers: ${Object.entries(phase.flood.outcomes).map(([k, v]) => `${k}: ${v}`).join(', ')}`);
        log(`    bogus requests that reached decryption: ${phase.bogusRequestsDecrypted}`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const summaries = floodRates.map((rate, i) => {
      const ratios = phasesByRate[i]!.map((p) => p.p99Ratio);
      return { floodRatePerSecond: rate === 0 ? 'as fast as the flooder can' : rate, p99Ratios: ratios, medianP99Ratio: median(ratios) };
    });
    log(`unloaded p99 per round: ${unloadedRounds.map((u) => `${u.p99} ms`).join(', ')}`);
    for (const sm of summaries) {
      const bounded = typeof sm.floodRatePerSecond === 'number';
      log(`flood ${bounded ? `paced at ${sm.floodRatePerSecond}/s` : 'unpaced'}: p99 ratios ${sm.p99Ratios.join(', ')}; median ${sm.medianP99Ratio}${bounded ? ` (target ≤ 2)${sm.medianP99Ratio <= 2 ? '' : ' — above target'}` : ' (no target: the flooder saturates the machine)'}`);
    }
    const phases = phasesByRate.flat();
    await peer.close();
    if (loadavg()[0]! > cpus().length) log(`note: load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores — other work was running`);
    const out = {
      benchmark: 'hardening-inbox-flood',
      node: process.version,
      cpus: cpus().length,
      // Other work on the machine shows here: the figures mean little when it exceeds the cores.
      loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      config: { rounds, samplesPerPhase: samples, intervalMs, floodMs, floodMax, floodConcurrency, floodRates, logLevel: 'silent' },
      unloadedMs: unloadedRounds,
      target: { p99Ratio: 2, appliesTo: 'the median over rounds of a bounded (paced) flood' },
      summary: summaries,
      phases,
      at: new Date().toISOString(),
    };
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/hardening.json', `${JSON.stringify(out, null, 2)}\n`);
    if (phases.some((p) => p.bogusRequestsDecrypted !== 0)) process.exitCode = 1;
  } finally {
    await cluster.close();
  }
}

if (process.argv[2] === FLOOD_ARG) await flood(JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as FloodSpec);
else await main();
