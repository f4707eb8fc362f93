/**
 * One measured setup: warm up, size the raw pipeline on a message the node really sent, then the
 * raw and SDK limits, the node run and the limits again (the machine is shared and noisy:
 * bracketing the node run shows how much the limits themselves moved; each limit is the median of
 * its rounds), and finally the checks that every message ended delivered once on both sides.
 */
import { performance as perf } from 'node:perf_hooks';
import type { NodeEventMap, Store } from '../../src/index.js';
import { drive, type DriveResult, type DriveTarget } from './drive.js';
import { printProfileSummary, type CpuProfile } from './profile-summary.js';
import { rawPipeline, type RawPipeline } from './raw-pipeline.js';
import { benchReferral } from './referral.js';
import { sdkPipeline } from './sdk-pipeline.js';

export interface Topology {
  label: string;
  description: string;
  /** The instances of the sending node the driver sends through, in turn. */
  senders: DriveTarget[];
  /** The instances of the receiving node (their acceptances are counted). */
  receivers: Pick<DriveTarget, 'events'>[];
  /** Each node's id and a store on its data, for sizing the pipelines and for the final checks. */
  sender: { id: string; store: Store };
  receiver: { id: string; store: Store };
  agreementId: string;
  consentId: string;
}

export interface MeasureOptions {
  messages: number;
  concurrency: number;
  warmup: number;
  rawRounds: number;
}

export interface SetupResult {
  label: string;
  description: string;
  node: DriveResult;
  /** cpuMsPerMessage: CPU of this process (all threads) per message over the rounds. */
  raw: { messagesPerSecond: number; rounds: number[]; cpuMsPerMessage: number };
  /** The raw pipeline plus Content-Digest and the RFC 9421 request signature (raw-pipeline.ts `transport`): informative, no target. */
  rawTransport: { messagesPerSecond: number; rounds: number[]; cpuMsPerMessage: number };
  ratioToRawTransport: number;
  /** The same pipeline through the SDK (sdk-pipeline.ts): the ceiling of a node built on it. */
  sdk: { messagesPerSecond: number; rounds: number[]; cpuMsPerMessage: number };
  /** Node over raw limit: the figure with a target. */
  ratio: number;
  /** Node over SDK pipeline: what the node itself adds. */
  ratioToSdk: number;
  /**
   * Where the node run's time went, in this process: CPU in cores (all threads) and the share of
   * time the event loop was busy. A busy share near 1 means the run was bound by this process's
   * one JavaScript thread, whatever the other core was doing.
   */
  thisProcess: { cpuCores: number; eventLoopBusy: number; cpuMsPerMessage: number };
  target: number;
  acceptedPerReceiverInstance: number[];
  duplicatesAnswered: number;
  checks: { delivered: number; queued: number; inboxRows: number; ok: boolean };
  sizes: { jweBytes: number; sdJwtBytes: number; receiptBytes: number };
}

export const TARGET_RATIO = 0.5;

/**
 * With BENCH_CPU_PROFILE=<dir>, a V8 CPU profile of the measured run only (not start-up or warm-up)
 * is written there, for tuning, and the main thread's time by area is printed (profile-summary.ts).
 */
async function startProfiler(log: (line: string) => void): Promise<{ stop(label: string): Promise<void> } | undefined> {
  const dir = process.env['BENCH_CPU_PROFILE'];
  if (!dir) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { mkdir, writeFile } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(label) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      await mkdir(dir, { recursive: true });
      const file = `${dir}/${label.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`;
      await writeFile(file, JSON.stringify(profile));
      log(`${label}: CPU profile written to ${file}`);
      printProfileSummary(profile as unknown as CpuProfile, log);
    },
  };
}

/** The upper median; NaN without rounds (BENCH_RAW_ROUNDS=0, when only the node is of interest). */
const median = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);

export async function measure(topology: Topology, options: MeasureOptions, log: (line: string) => void): Promise<SetupResult> {
  const { senders, receivers, sender, receiver } = topology;
  const input = () => benchReferral(receiver.id, topology.agreementId, topology.consentId);

  log(`${topology.label}: warm-up (${options.warmup} messages)`);
  await drive({ senders, messages: options.warmup, concurrency: options.concurrency, input });
  const sample = (await sender.store.listOutbox({ state: 'delivered', limit: 1 }))[0];
  const stored = sample ? await receiver.store.getInbox(sample.id) : undefined;
  if (!sample?.receipt || !stored?.sdJwt) throw new Error('warm-up did not deliver a message');
  const sizes = { jwt: sample.jwt, sdJwt: stored.sdJwt, receipt: sample.receipt };
  const raw = await rawPipeline(sizes);
  const rawTransport = await rawPipeline(sizes, { transport: true });
  const consent = await sender.store.getConsent(topology.consentId);
  if (!consent) throw new Error('the consent is missing');
  const sdk = await sdkPipeline({ from: sender.id, to: receiver.id, agreementId: topology.agreementId, consentId: topology.consentId, consentRecord: consent.jws });
  const warm = Math.min(200, options.messages);
  await raw.run(warm, options.concurrency);
  await rawTransport.run(warm, options.concurrency);
  await sdk.run(warm, options.concurrency);

  const rounds = { raw: [] as number[], rawTransport: [] as number[], sdk: [] as number[] };
  // CPU per message says what a pipeline costs whatever the cores do; the throughput ratio alone cannot.
  const cpu = { raw: { micros: 0, messages: 0 }, rawTransport: { micros: 0, messages: 0 }, sdk: { micros: 0, messages: 0 } };
  const limitRounds = async (count: number) => {
    for (let r = 0; r < count; r++) {
      for (const [name, pipeline] of [['raw', raw], ['rawTransport', rawTransport], ['sdk', sdk]] as [keyof typeof rounds, RawPipeline][]) {
        const before = process.cpuUsage();
        rounds[name].push(Math.round(await pipeline.run(options.messages, options.concurrency)));
        const used = process.cpuUsage(before);
        cpu[name].micros += used.user + used.system;
        cpu[name].messages += options.messages;
      }
    }
  };
  const msPerMessage = (micros: number, messages: number) => Math.round((micros / 1000 / Math.max(1, messages)) * 100) / 100;
  log(`${topology.label}: raw and SDK limits before the node run`);
  await limitRounds(Math.ceil(options.rawRounds / 2));

  const accepted = receivers.map(() => 0);
  let duplicates = 0;
  const offs = receivers.map((node, i) => {
    const on = ({ duplicate }: NodeEventMap['inbox.accepted'][0]) => {
      if (duplicate) duplicates += 1;
      else accepted[i]! += 1;
    };
    node.events.on('inbox.accepted', on);
    return () => node.events.off('inbox.accepted', on);
  });
  log(`${topology.label}: ${options.messages} messages, ${options.concurrency} outstanding`);
  let result: DriveResult;
  const profiler = await startProfiler(log);
  const cpuBefore = process.cpuUsage();
  const eluBefore = perf.eventLoopUtilization();
  const startedAt = performance.now();
  let thisProcess: SetupResult['thisProcess'];
  try {
    result = await drive({ senders, messages: options.messages, concurrency: options.concurrency, input });
  } finally {
    const used = process.cpuUsage(cpuBefore);
    thisProcess = {
      cpuCores: Math.round(((used.user + used.system) / 1000 / (performance.now() - startedAt)) * 100) / 100,
      eventLoopBusy: Math.round(perf.eventLoopUtilization(eluBefore).utilization * 100) / 100,
      cpuMsPerMessage: msPerMessage(used.user + used.system, options.messages),
    };
    for (const off of offs) off();
    await profiler?.stop(topology.label);
  }
  log(`${topology.label}: raw and SDK limits after the node run`);
  await limitRounds(Math.floor(options.rawRounds / 2));

  const total = options.warmup + options.messages;
  const counts = await sender.store.countOutboxByState();
  const inboxRows = (await receiver.store.listInbox({ sender: sender.id })).length;
  const limit = median(rounds.raw);
  const transportLimit = median(rounds.rawTransport);
  const sdkLimit = median(rounds.sdk);
  return {
    label: topology.label,
    description: topology.description,
    node: result,
    raw: { messagesPerSecond: limit, rounds: rounds.raw, cpuMsPerMessage: msPerMessage(cpu.raw.micros, cpu.raw.messages) },
    rawTransport: { messagesPerSecond: transportLimit, rounds: rounds.rawTransport, cpuMsPerMessage: msPerMessage(cpu.rawTransport.micros, cpu.rawTransport.messages) },
    ratioToRawTransport: Math.round((result.messagesPerSecond / transportLimit) * 1000) / 1000,
    sdk: { messagesPerSecond: sdkLimit, rounds: rounds.sdk, cpuMsPerMessage: msPerMessage(cpu.sdk.micros, cpu.sdk.messages) },
    ratio: Math.round((result.messagesPerSecond / limit) * 1000) / 1000,
    ratioToSdk: Math.round((result.messagesPerSecond / sdkLimit) * 1000) / 1000,
    thisProcess,
    target: TARGET_RATIO,
    acceptedPerReceiverInstance: accepted,
    duplicatesAnswered: duplicates,
    checks: { delivered: counts.delivered, queued: counts.queued, inboxRows, ok: counts.delivered === total && counts.queued === 0 && inboxRows === total },
    sizes: { jweBytes: sample.jwe.length, sdJwtBytes: stored.sdJwt.length, receiptBytes: sample.receipt.length },
  };
}

export function printResult(r: SetupResult, log: (line: string) => void): void {
  const l = r.node.latencyMs;
  log(`${r.label}`);
  log(`  node      ${r.node.messagesPerSecond} msgs/s  (${r.node.messages} messages in ${r.node.seconds} s, ${r.node.concurrency} outstanding)`);
  log(`  latency   p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  max ${l.max} ms`);
  log(`  raw limit ${r.raw.messagesPerSecond} msgs/s  (jose alone: seal+open+receipt sign+verify; rounds ${r.raw.rounds.join(', ')})`);
  log(`  raw+wire  ${r.rawTransport.messagesPerSecond} msgs/s  (the raw limit plus Content-Digest and the RFC 9421 request signature; rounds ${r.rawTransport.rounds.join(', ')})`);
  log(`  sdk limit ${r.sdk.messagesPerSecond} msgs/s  (SDK build+seal+open+receipt sign+verify; rounds ${r.sdk.rounds.join(', ')})`);
  log(`  ratio     ${r.ratio} of the raw limit (target ≥ ${r.target})${r.ratio >= r.target ? '' : '  BELOW TARGET'}; ${r.ratioToRawTransport} of raw+wire; ${r.ratioToSdk} of the SDK limit`);
  // Only meaningful when the nodes run here; otherwise this process merely drives them.
  if (r.thisProcess.eventLoopBusy >= 0.2) {
    log(`  this process during the run: ${r.thisProcess.cpuCores} cores of CPU, event loop busy ${Math.round(r.thisProcess.eventLoopBusy * 100)} % of the time`);
    log(`  CPU/msg   node ${r.thisProcess.cpuMsPerMessage} ms, raw ${r.raw.cpuMsPerMessage} ms, raw+wire ${r.rawTransport.cpuMsPerMessage} ms, sdk ${r.sdk.cpuMsPerMessage} ms (all threads of this process)`);
  } else {
    log(`  CPU/msg   raw ${r.raw.cpuMsPerMessage} ms, raw+wire ${r.rawTransport.cpuMsPerMessage} ms, sdk ${r.sdk.cpuMsPerMessage} ms (the nodes' own processes are not counted)`);
  }
  if (r.node.sentPerInstance.length > 1 || r.acceptedPerReceiverInstance.length > 1) {
    log(`  spread    sent per sender instance ${r.node.sentPerInstance.join('/')}, accepted per receiver instance ${r.acceptedPerReceiverInstance.join('/')}`);
  }
  log(`  checks    delivered ${r.checks.delivered}, queued ${r.checks.queued}, inbox rows ${r.checks.inboxRows}, duplicates answered ${r.duplicatesAnswered}: ${r.checks.ok ? 'ok' : 'MISMATCH'}`);
}

export function options(): MeasureOptions & { perPeerConcurrency: number; batchSize: number; logLevel: 'info' | 'silent' | 'warn' } {
  const num = (name: string, fallback: number) => {
    const v = process.env[name];
    const n = v === undefined || v === '' ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
    return n;
  };
  const concurrency = num('BENCH_CONCURRENCY', 16);
  const level = process.env['BENCH_LOG_LEVEL'] ?? 'info';
  if (level !== 'info' && level !== 'silent' && level !== 'warn') throw new Error('BENCH_LOG_LEVEL must be info, warn or silent');
  return {
    messages: num('BENCH_MESSAGES', 2000),
    concurrency,
    warmup: num('BENCH_WARMUP', 200),
    rawRounds: num('BENCH_RAW_ROUNDS', 4),
    perPeerConcurrency: num('BENCH_PER_PEER_CONCURRENCY', concurrency),
    batchSize: num('BENCH_BATCH_SIZE', Math.max(16, 2 * concurrency)),
    logLevel: level,
  };
}
