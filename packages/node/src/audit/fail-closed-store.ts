/**
 * Fail closed on audit-log write failures (spec/node.md §9.3). Every state change the node makes
 * is committed together with its audit event, so a store that cannot append to the log cannot
 * record anything: instead of trying again on every request and every outbox poll, the node stops
 * accepting and sending until the log can be written again. The store's own write failure
 * (STORE_UNAVAILABLE) is the signal; reads go on, so caseworkers and auditors still see what is
 * recorded.
 *
 * While halted: every write is refused with STORE_UNAVAILABLE (the inbox answers 503, the local
 * API too, /readyz reports it), and `claimDue` claims nothing, which pauses the outbox worker
 * without touching it.
 *
 * The same view keeps every entry appended with `appendAudit` within the bounds an auditor's
 * verifier accepts (bounded-event.ts).
 */
import { ProtocolError } from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { AuditEvent, AuditRecord, Store } from '../store/types.js';
import { boundedAuditEvents } from './bounded-event.js';

/** Store methods that append an audit event in the same transaction. */
const AUDITED: ReadonlySet<string> = new Set(['withdrawConsent', 'enqueue', 'complete', 'acceptInbound', 'eraseInboundByConsent', 'appendAudit']);
/** Every method that writes. */
const WRITES: ReadonlySet<string> = new Set([
  ...AUDITED,
  'putPeer',
  'putAgreement',
  'addTermination',
  'putConsent',
  'claimDue',
  'putToken',
  'remember',
  'putCheckpoint',
  'putNodeDocument',
]);

export interface HaltState {
  /** STORE_UNAVAILABLE (the store failed; the node resumes once it can write) or AUDIT_LOG_INCONSISTENT (final). */
  code: 'STORE_UNAVAILABLE' | 'AUDIT_LOG_INCONSISTENT';
  reason: string;
  since: string;
}

/** The node's halted-or-not state, shared by the store guard, the audit log and readiness. */
export class AuditGate {
  #halted: HaltState | undefined;
  readonly #listeners: ((state: HaltState) => void)[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly now: () => Date,
  ) {}

  get halted(): HaltState | undefined {
    return this.#halted;
  }

  onHalt(listener: (state: HaltState) => void): void {
    this.#listeners.push(listener);
  }

  /** Stops the node's writes; an inconsistency is final, a store failure may be resumed from. */
  halt(code: HaltState['code'], reason: string): void {
    if (this.#halted && (this.#halted.code === 'AUDIT_LOG_INCONSISTENT' || code === 'STORE_UNAVAILABLE')) return;
    this.#halted = { code, reason, since: this.now().toISOString() };
    this.logger.error({ code, reason }, 'audit log cannot be written: the node stops accepting and sending messages');
    for (const listener of this.#listeners) listener(this.#halted);
  }

  resume(): HaltState | undefined {
    const was = this.#halted;
    if (!was || was.code !== 'STORE_UNAVAILABLE') return undefined;
    this.#halted = undefined;
    this.logger.warn({ since: was.since }, 'audit log writable again: the node accepts and sends messages');
    return was;
  }

  error(): ProtocolError {
    const h = this.#halted;
    return new ProtocolError('STORE_UNAVAILABLE', 'The audit log cannot be written: this node accepts and sends nothing until it can', h ? { since: h.since } : undefined);
  }
}

/** An event recorded as one or more entries within the verifier's bounds (bounded-event.ts); returns the last. */
async function appendBounded(store: Store, event: AuditEvent): Promise<AuditRecord> {
  let last: AuditRecord | undefined;
  for (const part of boundedAuditEvents(event)) last = await store.appendAudit(part);
  return last!;
}

/**
 * The store the node's components use: `store` itself, except that a failed audited write halts
 * the gate and, while it is halted, writes are refused and nothing is claimed.
 */
export function failClosedStore(store: Store, gate: AuditGate): Store {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      const name = String(property);
      // Bound to the real store: its methods use private fields, which a proxy does not carry.
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (!WRITES.has(name)) return method;
      return async (...args: unknown[]) => {
        if (gate.halted) {
          if (name === 'claimDue') return [];
          throw gate.error();
        }
        try {
          if (name === 'appendAudit') return await appendBounded(target, args[0] as AuditEvent);
          return await method(...args);
        } catch (e) {
          // `complete` without an event (a reschedule) writes no audit leaf; any other audited write does.
          const audited = AUDITED.has(name) && !(name === 'complete' && args[3] === undefined);
          if (audited && e instanceof ProtocolError && e.code === 'STORE_UNAVAILABLE') gate.halt('STORE_UNAVAILABLE', e.message);
          throw e;
        }
      };
    },
  });
}
