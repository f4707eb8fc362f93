/**
 * The outbox worker (spec/node.md §4.2): leases due messages, delivers them with a per-peer
 * concurrency limit behind a per-peer circuit breaker, and records exactly one outcome per
 * attempt. Before every attempt the message's consent and agreement are checked again, so a
 * withdrawal or an expiry that happened while it waited stops it. Crash safety comes from the
 * lease (an attempt whose outcome was not recorded is retried after the lease expires) and from
 * the receiver's exactly-once inbox (a redelivery gets the original receipt).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { messageOutcomeEvent, ProtocolError, type ErrorCode } from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { NodeEvents } from '../events.js';
import type { NodeMetrics } from '../observability/node-metrics.js';
import type { PolicyContext } from '../policy/policy-context.js';
import type { OutboxEntry, Store } from '../store/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import { backoffDelay } from './backoff.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import { deliver, type DeliverDeps } from './deliver.js';
import { crashPoint } from '../fault-injection.js';
import { claimsOfQueued } from './message-claims.js';
import { PRIORITY_DEFAULT } from './send-message.js';

export interface WorkerOptions {
  pollIntervalMs: number;
  batchSize: number;
  perPeerConcurrency: number;
  leaseMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  maxAttempts: number;
  /** Upper bound of one attempt (request timeout): a lease older than leaseMs minus this is not used. */
  attemptTimeoutMs: number;
}

export interface WorkerDeps {
  store: Store;
  trust: TrustStore;
  policy: PolicyContext;
  events: NodeEvents;
  metrics: NodeMetrics;
  logger: Logger;
  breakers: CircuitBreakers;
  deliver: DeliverDeps;
  now: () => Date;
  random?: () => number;
}

function withCode<E extends { fields: Record<string, unknown> }>(event: E, code: ErrorCode): E {
  return { ...event, fields: { ...event.fields, code } };
}

/** Enforcement codes that end a queued message as cancelled: sending it now would break consent or agreement. */
export function isPolicyCode(code: ErrorCode): boolean {
  return code.startsWith('CONSENT_') || code.startsWith('AGREEMENT_') || code === 'ONWARD_NOT_ALLOWED' || code === 'PROVENANCE_INVALID';
}

/** Leased entries held in memory, waiting for their peer, at most this many batches' worth. */
const WAITING_PER_BATCH = 4;

interface Claimed {
  entry: OutboxEntry;
  claimedAt: number;
}

export class OutboxWorker {
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly #deps: WorkerDeps;
  readonly #options: WorkerOptions;
  readonly #pending = new Map<string, Claimed[]>();
  readonly #inflight = new Map<string, number>();
  readonly #active = new Set<Promise<void>>();
  readonly #exclusive = new Set<string>();
  readonly #rightsCache = new Map<string, { at: number; due: number | undefined }>();
  readonly #attempting = new Set<string>();
  #running = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;
  #woken = false;
  #lastTickAt = 0;

  constructor(deps: WorkerDeps, options: WorkerOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Whether the loop has run recently (readiness). */
  healthy(now = Date.now()): boolean {
    return this.#running && now - this.#lastTickAt < Math.max(this.#options.pollIntervalMs * 5, 30_000);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.wake();
    await this.#loop;
    await Promise.allSettled([...this.#active]);
    // Leased but never started: hand them back now rather than when their lease lapses.
    const waiting = [...this.#pending.values()].flat();
    this.#pending.clear();
    for (const { entry } of waiting) {
      await this.#reschedule(entry, 'PEER_UNREACHABLE', 'node stopping', this.#deps.now().getTime()).catch(() => undefined);
    }
  }

  wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  /**
   * Whether an attempt to deliver `messageId` is under way in this process: from its last checks
   * until its outcome is recorded, the peer may be receiving it (spec/node.md §4.6).
   */
  attempting(messageId: string): boolean {
    return this.#attempting.has(messageId);
  }

  /** Number of attempts running or leased and waiting for a per-peer slot. */
  busy(): number {
    let waiting = 0;
    for (const list of this.#pending.values()) waiting += list.length;
    return this.#active.size + waiting;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#woken = false;
      try {
        await this.tick();
      } catch (e) {
        this.#deps.logger.error({ code: (e as ProtocolError).code ?? 'INTERNAL', err: e instanceof ProtocolError ? undefined : e }, 'outbox tick failed');
      }
      this.#lastTickAt = Date.now();
      if (!this.#running) break;
      if (!this.#woken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#options.pollIntervalMs);
          this.#wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wakeUp = undefined;
      }
    }
  }

  /**
   * Claimed entries that take up the batch: attempts under way and those about to start. Entries
   * waiting behind a peer whose slots are all taken do not, so that a peer that never answers (its
   * attempts last until the timeout) does not hold back deliveries to every other peer; the
   * waiting ones are bounded separately, to bound memory.
   */
  #occupying(): number {
    let n = this.#active.size;
    for (const [peer, list] of this.#pending) {
      n += Math.min(list.length, Math.max(0, this.#options.perPeerConcurrency - (this.#inflight.get(peer) ?? 0)));
    }
    return n;
  }

  /** One claim round; exposed for tests that step the worker by hand. */
  async tick(): Promise<void> {
    const capacity = Math.min(this.#options.batchSize - this.#occupying(), this.#options.batchSize * WAITING_PER_BATCH - this.busy());
    if (capacity <= 0) return;
    const now = this.#deps.now();
    const entries = await this.#deps.store.claimDue({ now: now.toISOString(), limit: capacity, owner: this.owner, leaseMs: this.#options.leaseMs });
    for (const entry of entries) {
      const list = this.#pending.get(entry.peer) ?? [];
      list.push({ entry, claimedAt: now.getTime() });
      list.sort((a, b) => a.entry.priority - b.entry.priority);
      this.#pending.set(entry.peer, list);
    }
    for (const peer of new Set(entries.map((e) => e.peer))) this.#pump(peer);
  }

  /**
   * Starts attempts for `peer` up to its concurrency limit. A rights message (consent withdrawal,
   * erasure confirmation: priority below the default) goes alone: it waits for attempts in flight
   * and nothing else to that peer starts until it is done, so it overtakes queued traffic.
   */
  #pump(peer: string): void {
    const list = this.#pending.get(peer);
    while (list && list.length > 0 && !this.#exclusive.has(peer)) {
      const inflight = this.#inflight.get(peer) ?? 0;
      if (inflight >= this.#options.perPeerConcurrency) break;
      const exclusive = list[0]!.entry.priority < PRIORITY_DEFAULT;
      if (exclusive && inflight > 0) break;
      const item = list.shift()!;
      if (exclusive) this.#exclusive.add(peer);
      this.#inflight.set(peer, inflight + 1);
      this.#attempting.add(item.entry.id);
      const task = this.#process(item)
        .catch((e: unknown) => this.#deps.logger.error({ messageId: item.entry.id, err: e instanceof ProtocolError ? undefined : e, code: (e as ProtocolError).code }, 'outbox attempt crashed'))
        .finally(() => {
          this.#attempting.delete(item.entry.id);
          this.#active.delete(task);
          if (exclusive) {
            this.#exclusive.delete(peer);
            this.invalidateRights(peer);
          }
          this.#inflight.set(peer, (this.#inflight.get(peer) ?? 1) - 1);
          if (this.#running) {
            this.#pump(peer);
            this.wake();
          }
        });
      this.#active.add(task);
    }
    if (list && list.length === 0) this.#pending.delete(peer);
  }

  async #process({ entry, claimedAt }: Claimed): Promise<void> {
    if (!this.#running) return;
    const d = this.#deps;
    // A lease about to lapse may already belong to another instance: leave the entry to it.
    if (d.now().getTime() - claimedAt > this.#options.leaseMs - this.#options.attemptTimeoutMs - 1000) {
      d.logger.warn({ messageId: entry.id }, 'lease too old to use; leaving the message for the next claim');
      return;
    }
    const now = d.now();
    if (Date.parse(entry.expiresAt) <= now.getTime()) {
      await this.#end(entry, 'failed', 'EXPIRED', 'The message expired before it could be delivered');
      return;
    }
    try {
      const claims = claimsOfQueued(entry.jwt);
      await d.policy.enforce({ header: claims.header }, claims.consentRecord, now);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('INTERNAL', undefined, undefined, { cause: e });
      if (isPolicyCode(err.code)) await this.#end(entry, 'cancelled', err.code, err.message);
      else await this.#retry(entry, err.code, err.message);
      return;
    }
    if (!d.breakers.tryAcquire(entry.peer)) {
      const at = d.breakers.retryAt(entry.peer) + Math.floor((d.random ?? Math.random)() * this.#options.backoffBaseMs);
      await this.#reschedule(entry, 'PEER_UNREACHABLE', 'circuit open', at);
      return;
    }
    const rightsDue = entry.priority >= PRIORITY_DEFAULT ? await this.#rightsAhead(entry.peer) : undefined;
    if (rightsDue !== undefined) {
      d.breakers.release(entry.peer);
      await this.#reschedule(entry, 'PEER_UNREACHABLE', 'a consent withdrawal to this peer goes first', Math.max(rightsDue, now.getTime()) + this.#options.backoffBaseMs);
      return;
    }
    let inbox: string;
    try {
      inbox = (await d.trust.document(entry.peer)).document.inbox;
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('PEER_UNREACHABLE', undefined, undefined, { cause: e });
      if (err.code === 'PEER_UNREACHABLE' || err.code === 'PEER_RESPONSE_INVALID') d.breakers.onFailure(entry.peer);
      else d.breakers.release(entry.peer);
      await this.#retry(entry, err.code, err.message);
      return;
    }
    const started = performance.now();
    const outcome = await deliver(d.deliver, entry, inbox);
    if (outcome.kind === 'delivered') crashPoint('outbox.sent');
    d.metrics.deliveryDuration.observe((performance.now() - started) / 1000, { outcome: outcome.kind });
    if (outcome.kind === 'retry' && outcome.transportFailure) d.breakers.onFailure(entry.peer);
    else d.breakers.onSuccess(entry.peer);

    const at = d.now().toISOString();
    if (outcome.kind === 'delivered') {
      const ok = await d.store.complete(
        entry.id,
        this.owner,
        { state: 'delivered', receipt: outcome.receipt, at },
        messageOutcomeEvent({ messageId: entry.id, peer: entry.peer, digest: entry.digest, receipt: outcome.receipt }, 'accepted', at),
      );
      if (!ok) return this.#leaseLost(entry);
      d.metrics.deliveries.inc({ outcome: 'delivered' });
      d.metrics.queueLatency.observe((Date.parse(at) - Date.parse(entry.createdAt)) / 1000);
      d.logger.info({ messageId: entry.id, peer: entry.peer, attempts: entry.attempts + 1 }, 'message delivered');
      d.events.emit('outbox.delivered', { messageId: entry.id, peer: entry.peer, type: entry.type });
    } else if (outcome.kind === 'rejected') {
      const ok = await d.store.complete(
        entry.id,
        this.owner,
        { state: 'rejected', problem: outcome.problem, ...(outcome.receipt ? { receipt: outcome.receipt } : {}), at },
        // With a signed rejection the entry names that receipt (spec/audit.md §3.2); without one there is nothing to name.
        outcome.receipt !== undefined
          ? withCode(messageOutcomeEvent({ messageId: entry.id, peer: entry.peer, digest: entry.digest, receipt: outcome.receipt }, 'rejected', at), outcome.code)
          : { kind: 'outbox.rejected', fields: { messageId: entry.id, peer: entry.peer, code: outcome.code, signedReceipt: false }, at },
      );
      if (!ok) return this.#leaseLost(entry);
      d.metrics.deliveries.inc({ outcome: 'rejected' });
      d.logger.warn({ messageId: entry.id, peer: entry.peer, code: outcome.code }, 'message rejected by the peer');
      d.events.emit('outbox.rejected', { messageId: entry.id, peer: entry.peer, type: entry.type, code: outcome.code });
    } else {
      await this.#retry(entry, outcome.code, outcome.detail, outcome.retryAfterMs);
    }
  }

  async #retry(entry: OutboxEntry, code: ErrorCode, detail: string, retryAfterMs?: number): Promise<void> {
    const d = this.#deps;
    const attempt = entry.attempts + 1;
    if (attempt >= this.#options.maxAttempts) {
      await this.#end(entry, 'failed', code, `Gave up after ${attempt} attempts: ${detail}`);
      return;
    }
    const delay = Math.max(backoffDelay({ baseMs: this.#options.backoffBaseMs, capMs: this.#options.backoffCapMs }, attempt, d.random), retryAfterMs ?? 0);
    d.metrics.deliveries.inc({ outcome: 'retry' });
    d.logger.info({ messageId: entry.id, peer: entry.peer, code, attempt, delayMs: delay }, 'delivery will be retried');
    d.events.emit('outbox.retry', { messageId: entry.id, peer: entry.peer, code, attempt, delayMs: delay });
    await this.#reschedule(entry, code, detail, d.now().getTime() + delay);
  }

  async #reschedule(entry: OutboxEntry, code: ErrorCode, detail: string, atMs: number): Promise<void> {
    const d = this.#deps;
    // Never later than expiry: an expired message must end as failed promptly, not linger.
    const next = Math.min(atMs, Date.parse(entry.expiresAt));
    const ok = await d.store.complete(entry.id, this.owner, {
      state: 'queued',
      error: `${code}: ${detail}`.slice(0, 500),
      nextAttemptAt: new Date(next).toISOString(),
      at: d.now().toISOString(),
    });
    if (!ok) this.#leaseLost(entry);
  }

  async #end(entry: OutboxEntry, state: 'failed' | 'cancelled', code: ErrorCode, detail: string): Promise<void> {
    const d = this.#deps;
    const at = d.now().toISOString();
    const ok = await d.store.complete(entry.id, this.owner, { state, error: `${code}: ${detail}`.slice(0, 500), at }, {
      kind: `outbox.${state}`,
      fields: { messageId: entry.id, peer: entry.peer, code },
      at,
    });
    if (!ok) return this.#leaseLost(entry);
    d.metrics.deliveries.inc({ outcome: state });
    d.logger.warn({ messageId: entry.id, peer: entry.peer, code }, `message ${state}`);
    d.events.emit(state === 'failed' ? 'outbox.failed' : 'outbox.cancelled', { messageId: entry.id, peer: entry.peer, type: entry.type, code });
  }

  /**
   * When a rights message to `peer` is still queued, the time it is next due: other traffic to
   * that peer waits behind it (DESIGN flow 5). Cached briefly, since every attempt asks.
   */
  async #rightsAhead(peer: string): Promise<number | undefined> {
    const now = Date.now();
    const cached = this.#rightsCache.get(peer);
    if (cached && now - cached.at < 1000) return cached.due;
    const next = await this.#deps.store.nextQueuedBelow(peer, PRIORITY_DEFAULT);
    const due = next === undefined ? undefined : Date.parse(next);
    this.#rightsCache.set(peer, { at: now, due });
    return due;
  }

  /** Forgets what is known about queued rights messages (after one ends or is queued). */
  invalidateRights(peer: string): void {
    this.#rightsCache.delete(peer);
  }

  #leaseLost(entry: OutboxEntry): void {
    this.#deps.logger.info({ messageId: entry.id }, 'outcome not recorded: the entry was completed or re-leased elsewhere');
  }
}
