/**
 * A closed-loop load driver: `concurrency` caseworkers each send a referral, wait until their
 * node reports it delivered (the peer's receipt verified and the outcome committed; the peer
 * committed the message before it answered), then send the next. Throughput runs from the first
 * send to the last delivery; latency is per message, from the call to `send` to its delivery.
 */
import type { EventEmitter } from 'node:events';
import type { NodeEventMap, SendInput } from '../../src/index.js';

/** What the driver needs of a sending instance: a RunningNode, or a node in another process (remote-node.ts). */
export interface DriveTarget {
  send(input: SendInput): Promise<{ id: string }>;
  events: Pick<EventEmitter<NodeEventMap>, 'on' | 'off'>;
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface DriveResult {
  messages: number;
  concurrency: number;
  seconds: number;
  messagesPerSecond: number;
  /** Milliseconds from `send` to the delivered state with a verified receipt. */
  latencyMs: LatencySummary;
  /** How many messages each sending instance accepted from the driver. */
  sentPerInstance: number[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarise(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length)),
  };
}

export interface DriveOptions {
  /** Instances of the sending node; sends go to them in turn (agency software behind a load balancer). */
  senders: readonly DriveTarget[];
  messages: number;
  concurrency: number;
  input: () => SendInput;
  /** Gives up when no message has been delivered for this long. */
  stallTimeoutMs?: number;
}

export async function drive(options: DriveOptions): Promise<DriveResult> {
  const { senders, messages, concurrency } = options;
  const waiting = new Map<string, { resolve: (at: number) => void; reject: (e: Error) => void }>();
  // A delivery may be reported before the caller's `send` has resumed: remember it until asked.
  const early = new Map<string, number>();
  const ended = new Map<string, string>();
  let lastProgress = performance.now();
  const onDelivered = ({ messageId }: { messageId: string }) => {
    const at = performance.now();
    lastProgress = at;
    const w = waiting.get(messageId);
    if (w) {
      waiting.delete(messageId);
      w.resolve(at);
    } else early.set(messageId, at);
  };
  const onEnded = (state: string) => ({ messageId, code }: { messageId: string; code: string }) => {
    const error = `${state} (${code})`;
    const w = waiting.get(messageId);
    if (w) {
      waiting.delete(messageId);
      w.reject(new Error(`message ${messageId} ${error}`));
    } else ended.set(messageId, error);
  };
  const listeners = senders.map((node) => {
    const rejected = onEnded('rejected');
    const failed = onEnded('failed');
    const cancelled = onEnded('cancelled');
    node.events.on('outbox.delivered', onDelivered);
    node.events.on('outbox.rejected', rejected);
    node.events.on('outbox.failed', failed);
    node.events.on('outbox.cancelled', cancelled);
    return () => {
      node.events.off('outbox.delivered', onDelivered);
      node.events.off('outbox.rejected', rejected);
      node.events.off('outbox.failed', failed);
      node.events.off('outbox.cancelled', cancelled);
    };
  });

  const deliveredAt = (id: string): Promise<number> => {
    const at = early.get(id);
    if (at !== undefined) {
      early.delete(id);
      return Promise.resolve(at);
    }
    const error = ended.get(id);
    if (error !== undefined) return Promise.reject(new Error(`message ${id} ${error}`));
    return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
  };

  const latencies: number[] = [];
  const sentPerInstance = senders.map(() => 0);
  let next = 0;
  let lastDelivery = 0;
  const stallTimeoutMs = options.stallTimeoutMs ?? 60_000;
  const watchdog = setInterval(() => {
    if (performance.now() - lastProgress > stallTimeoutMs) {
      for (const [id, w] of waiting) w.reject(new Error(`no delivery for ${stallTimeoutMs} ms (waiting for ${id})`));
      waiting.clear();
    }
  }, 1000);
  const lane = async () => {
    while (next < messages) {
      const i = next++;
      const instance = i % senders.length;
      const t0 = performance.now();
      const queued = await senders[instance]!.send(options.input());
      sentPerInstance[instance]! += 1;
      const t1 = await deliveredAt(queued.id);
      latencies.push(t1 - t0);
      if (t1 > lastDelivery) lastDelivery = t1;
    }
  };
  const start = performance.now();
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } finally {
    clearInterval(watchdog);
    for (const off of listeners) off();
  }
  const seconds = (lastDelivery - start) / 1000;
  return {
    messages,
    concurrency,
    seconds: Math.round(seconds * 1000) / 1000,
    messagesPerSecond: Math.round((messages / seconds) * 10) / 10,
    latencyMs: summarise(latencies),
    sentPerInstance,
  };
}
