/**
 * The Store contract (src/store/types.ts, spec/node.md §Store), written once and run against every
 * implementation. Nothing here may depend on one database: a test that needs to look inside the
 * database belongs in that store's own test file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MessageTypes, ProtocolError, sha256b64u } from '@passerelle/protocol';
import type { ErrorCode } from '@passerelle/protocol';
import { auditLeafHash } from '../src/store/audit-leaf.js';
import type {
  AgreementRecord,
  AuditEvent,
  ConsentRecordRow,
  InboxEntry,
  NewOutboxEntry,
  OutboxEntry,
  PeerRecord,
  Store,
  TokenRecord,
} from '../src/store/types.js';

export interface StoreFixture {
  store: Store;
  /** Closes every store the fixture opened and deletes the database. */
  cleanup: () => Promise<void>;
  /** Opens a new Store on the same database (the test closes the previous one first): a restart. */
  reopen: () => Promise<Store>;
}

const SELF = 'https://self.example';
const PEER_A = 'https://a.example';
const PEER_B = 'https://b.example';
const CONSENT_1 = '0196a000-0000-7000-8000-0000000000c1';
const CONSENT_2 = '0196a000-0000-7000-8000-0000000000c2';

const BASE_MS = Date.parse('2026-05-01T10:00:00Z');

/** Second-precision RFC 3339 (as the protocol writes them), `s` seconds after the base time. */
function ts(s: number): string {
  return new Date(BASE_MS + s * 1000).toISOString().replace('.000Z', 'Z');
}

function event(kind: string, at: string = ts(0), fields: AuditEvent['fields'] = {}): AuditEvent {
  return { kind, fields, at };
}

async function expectProtocolError(promise: Promise<unknown>, code: ErrorCode): Promise<ProtocolError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe(code);
  return error as ProtocolError;
}

let sequence = 0;

function messageId(): string {
  sequence += 1;
  return `0196a000-0000-7000-8000-${String(sequence).padStart(12, '0')}`;
}

async function newOutbox(overrides: Partial<NewOutboxEntry> = {}): Promise<NewOutboxEntry> {
  const id = overrides.id ?? messageId();
  const jwe = overrides.jwe ?? `eyJlbmMiOiJBMjU2R0NNIn0.key.iv.${id}.tag`;
  return {
    id,
    peer: PEER_B,
    type: MessageTypes.REFERRAL,
    threadId: 'thread-1',
    consentId: CONSENT_1,
    priority: 10,
    jwe,
    digest: await sha256b64u(jwe),
    jwt: `eyJ0eXAiOiJwYXNzZXJlbGxlIn0.${id}.sig`,
    expiresAt: ts(86_400),
    ...overrides,
  };
}

async function newInbound(overrides: Partial<Omit<InboxEntry, 'receipt'>> = {}): Promise<Omit<InboxEntry, 'receipt'>> {
  const id = overrides.id ?? messageId();
  const jwe = overrides.jwe ?? `eyJlbmMiOiJBMjU2R0NNIn0.key.iv.${id}.tag`;
  return {
    id,
    sender: PEER_A,
    type: MessageTypes.REFERRAL,
    threadId: 'thread-1',
    consentId: CONSENT_1,
    digest: await sha256b64u(jwe),
    jwe,
    sdJwt: `eyJ0eXAiOiJwYXNzZXJlbGxlIn0.${id}.sig~WyJzYWx0IiwiZ2l2ZW5fbmFtZSIsIkFtaW5hIl0~`,
    jwt: `eyJ0eXAiOiJwYXNzZXJlbGxlIn0.${id}.sig`,
    categories: ['identification', 'needs'],
    receivedAt: ts(0),
    ...overrides,
  };
}

function consent(id: string, overrides: Partial<ConsentRecordRow> = {}): ConsentRecordRow {
  return {
    id,
    controller: SELF,
    subject: `subj-${id.slice(-2)}`,
    jws: `eyJ0eXAiOiJwYXNzZXJlbGxlLWNvbnNlbnQifQ.${id}.sig`,
    expiresAt: ts(365 * 86_400),
    recordedAt: ts(0),
    withdrawnPurposes: [],
    ...overrides,
  };
}

function receiptFor(index: number, id = 'm'): string {
  return `eyJ0eXAiOiJwYXNzZXJlbGxlLXJlY2VpcHQrand0In0.${id}-${index}.sig`;
}

/** A makeReceipt that records its calls. */
function receiptMaker(): { make: (index: number) => Promise<string>; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    make: async (index: number) => {
      calls.push(index);
      return receiptFor(index);
    },
  };
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const future = (): string => new Date(Date.now() + 3_600_000).toISOString();
const past = (): string => new Date(Date.now() - 1_000).toISOString();

export function describeStoreConformance(name: string, factory: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    /** Enqueues, claims and completes an entry as delivered. */
    async function deliver(entry: NewOutboxEntry, at: string): Promise<void> {
      await store.enqueue(entry, event('outbox.enqueued', at, { id: entry.id }));
      const claimed = await store.claimDue({ now: at, limit: 100, owner: 'deliverer', leaseMs: 1_000 });
      expect(claimed.map((e) => e.id)).toContain(entry.id);
      for (const other of claimed.filter((e) => e.id !== entry.id)) {
        // Give back what this helper did not mean to take, so tests keep control of other entries.
        await store.complete(other.id, 'deliverer', { state: 'queued', error: 'released', nextAttemptAt: at, at });
      }
      expect(await store.complete(entry.id, 'deliverer', { state: 'delivered', receipt: receiptFor(0, entry.id), at })).toBe(true);
    }

    describe('trust store', () => {
      it('stores, replaces and lists peers by node id', async () => {
        expect(await store.getPeer(PEER_B)).toBeUndefined();
        const b: PeerRecord = { nodeId: PEER_B, fingerprints: ['fp-b-1'], addedAt: ts(0), updatedAt: ts(0) };
        const a: PeerRecord = {
          nodeId: PEER_A,
          fingerprints: ['fp-a-1', 'fp-a-2'],
          document: '{"payload":"eyJ2IjoxfQ","signatures":[]}',
          documentVersion: 3,
          addedAt: ts(1),
          updatedAt: ts(1),
        };
        await store.putPeer(b);
        await store.putPeer(a);
        expect(await store.getPeer(PEER_A)).toEqual(a);
        expect(await store.getPeer(PEER_B)).toEqual(b);
        expect((await store.getPeer(PEER_B))?.document).toBeUndefined();
        expect((await store.listPeers()).map((p) => p.nodeId)).toEqual([PEER_A, PEER_B]);

        const updated: PeerRecord = { ...b, fingerprints: ['fp-b-2'], document: '{"v":2}', documentVersion: 2, updatedAt: ts(5) };
        await store.putPeer(updated);
        expect(await store.getPeer(PEER_B)).toEqual(updated);
        expect(await store.listPeers()).toHaveLength(2);
      });
    });

    describe('agreements', () => {
      const agreement = (id: string, version = 1): AgreementRecord => ({
        id,
        version,
        jws: `{"payload":"${id}-v${version}","signatures":[]}`,
        terminations: [],
        registeredAt: ts(0),
      });

      it('stores agreements, appends terminations once each, keeps them across replacement', async () => {
        expect(await store.getAgreement('agr-2')).toBeUndefined();
        await store.putAgreement(agreement('agr-2'));
        await store.putAgreement(agreement('agr-1'));
        expect(await store.getAgreement('agr-2')).toEqual(agreement('agr-2'));

        await store.addTermination('agr-2', 'term.one.sig');
        await store.addTermination('agr-2', 'term.two.sig');
        await store.addTermination('agr-2', 'term.one.sig');
        expect((await store.getAgreement('agr-2'))?.terminations).toEqual(['term.one.sig', 'term.two.sig']);

        await store.putAgreement(agreement('agr-2', 2));
        const replaced = await store.getAgreement('agr-2');
        expect(replaced?.version).toBe(2);
        expect(replaced?.jws).toBe(agreement('agr-2', 2).jws);
        expect(replaced?.terminations).toEqual(['term.one.sig', 'term.two.sig']);

        const listed = await store.listAgreements();
        expect(listed.map((a) => a.id)).toEqual(['agr-1', 'agr-2']);
        expect(listed[0]?.terminations).toEqual([]);
        expect(listed[1]?.terminations).toEqual(['term.one.sig', 'term.two.sig']);
      });

      it('adds the terminations a put carries', async () => {
        await store.putAgreement({ ...agreement('agr-3'), terminations: ['term.a.sig'] });
        await store.putAgreement({ ...agreement('agr-3'), terminations: ['term.b.sig', 'term.a.sig'] });
        expect((await store.getAgreement('agr-3'))?.terminations).toEqual(['term.a.sig', 'term.b.sig']);
      });

      it('refuses a termination of an unknown agreement', async () => {
        await expectProtocolError(store.addTermination('agr-missing', 'term.sig'), 'NOT_FOUND');
        expect(await store.getAgreement('agr-missing')).toBeUndefined();
      });
    });

    describe('consents', () => {
      it('stores and lists consent records by recording time', async () => {
        const second = consent(CONSENT_2, { recordedAt: ts(10) });
        const first = consent(CONSENT_1, { recordedAt: ts(5) });
        await store.putConsent(second);
        await store.putConsent(first);
        expect(await store.getConsent(CONSENT_1)).toEqual(first);
        expect(await store.getConsent('missing')).toBeUndefined();
        expect((await store.listConsents()).map((c) => c.id)).toEqual([CONSENT_1, CONSENT_2]);
      });

      it('a whole withdrawal cancels queued entries under it, but not withdrawals, erasure confirmations, delivered entries or other consents', async () => {
        await store.putConsent(consent(CONSENT_1));
        await store.putConsent(consent(CONSENT_2));
        const queued = await newOutbox();
        const leased = await newOutbox({ type: MessageTypes.REINTEGRATION_PROFILE });
        const delivered = await newOutbox();
        const withdrawal = await newOutbox({ type: MessageTypes.CONSENT_WITHDRAWAL, priority: 0 });
        const confirmation = await newOutbox({ type: MessageTypes.ERASURE_CONFIRMATION });
        const otherConsent = await newOutbox({ consentId: CONSENT_2 });
        const noConsent = await newOutbox({ type: MessageTypes.PROBLEM_REPORT, consentId: undefined });

        await deliver(delivered, ts(0));
        await store.enqueue(leased, event('outbox.enqueued', ts(1)));
        expect((await store.claimDue({ now: ts(1), limit: 10, owner: 'worker', leaseMs: 60_000 })).map((e) => e.id)).toEqual([leased.id]);
        for (const e of [queued, withdrawal, confirmation, otherConsent, noConsent]) {
          await store.enqueue(e, event('outbox.enqueued', ts(2)));
        }
        const sizeBefore = await store.auditSize();

        const cancelled = await store.withdrawConsent(CONSENT_1, undefined, ts(3), event('consent.withdrawn', ts(3), { consent: CONSENT_1 }));
        expect(new Set(cancelled)).toEqual(new Set([leased.id, queued.id]));
        expect(cancelled).toHaveLength(2);

        for (const id of [queued.id, leased.id]) {
          const entry = await store.getOutbox(id);
          expect(entry?.state).toBe('cancelled');
          expect(entry?.updatedAt).toBe(ts(3));
        }
        for (const e of [withdrawal, confirmation, otherConsent, noConsent]) expect((await store.getOutbox(e.id))?.state).toBe('queued');
        expect((await store.getOutbox(delivered.id))?.state).toBe('delivered');

        // The worker that held the lease learns it lost the entry; the cancellation stands.
        expect(await store.complete(leased.id, 'worker', { state: 'delivered', receipt: 'r', at: ts(4) })).toBe(false);
        expect((await store.getOutbox(leased.id))?.state).toBe('cancelled');

        const record = await store.getConsent(CONSENT_1);
        expect(record?.withdrawnAt).toBe(ts(3));
        expect(record?.withdrawnPurposes).toEqual([]);
        expect((await store.getConsent(CONSENT_2))?.withdrawnAt).toBeUndefined();
        expect(await store.auditSize()).toBe(sizeBefore + 1);
        expect((await store.readAudit(sizeBefore, sizeBefore + 1))[0]).toMatchObject({ kind: 'consent.withdrawn', fields: { consent: CONSENT_1 } });

        const claimed = await store.claimDue({ now: ts(10), limit: 10, owner: 'worker', leaseMs: 60_000 });
        expect(claimed[0]?.id).toBe(withdrawal.id);
        expect(new Set(claimed.map((e) => e.id))).toEqual(new Set([withdrawal.id, confirmation.id, otherConsent.id, noConsent.id]));
      });

      it('a partial withdrawal records the union of purposes and cancels queued entries under the consent', async () => {
        await store.putConsent(consent(CONSENT_1));
        const queued = await newOutbox();
        const withdrawal = await newOutbox({ type: MessageTypes.CONSENT_WITHDRAWAL, priority: 0 });
        await store.enqueue(queued, event('outbox.enqueued'));
        await store.enqueue(withdrawal, event('outbox.enqueued'));

        expect(await store.withdrawConsent(CONSENT_1, ['monitoring'], ts(5), event('consent.withdrawn', ts(5)))).toEqual([queued.id]);
        let record = await store.getConsent(CONSENT_1);
        expect(record?.withdrawnAt).toBeUndefined();
        expect(record?.withdrawnPurposes).toEqual(['monitoring']);
        expect((await store.getOutbox(queued.id))?.state).toBe('cancelled');
        expect((await store.getOutbox(withdrawal.id))?.state).toBe('queued');

        expect(await store.withdrawConsent(CONSENT_1, ['referral', 'monitoring'], ts(6), event('consent.withdrawn', ts(6)))).toEqual([]);
        record = await store.getConsent(CONSENT_1);
        expect(record?.withdrawnPurposes).toEqual(['monitoring', 'referral']);

        // The remaining purposes still allow new messages; which purpose a message serves is the node's check.
        const later = await newOutbox();
        expect((await store.enqueue(later, event('outbox.enqueued', ts(7)))).state).toBe('queued');
      });

      it('never undoes a withdrawal: a second one keeps the first time, a later put keeps both', async () => {
        await store.putConsent(consent(CONSENT_1));
        await store.withdrawConsent(CONSENT_1, ['monitoring'], ts(1), event('consent.withdrawn', ts(1)));
        await store.withdrawConsent(CONSENT_1, undefined, ts(2), event('consent.withdrawn', ts(2)));
        await store.withdrawConsent(CONSENT_1, undefined, ts(3), event('consent.withdrawn', ts(3)));
        expect((await store.getConsent(CONSENT_1))?.withdrawnAt).toBe(ts(2));

        const refreshed = consent(CONSENT_1, { jws: 'refetched.consent.sig' });
        await store.putConsent(refreshed);
        const record = await store.getConsent(CONSENT_1);
        expect(record?.jws).toBe('refetched.consent.sig');
        expect(record?.withdrawnAt).toBe(ts(2));
        expect(record?.withdrawnPurposes).toEqual(['monitoring']);
      });

      it('refuses to withdraw an unknown consent and changes nothing', async () => {
        const entry = await newOutbox({ consentId: 'unknown-consent' });
        await store.enqueue(entry, event('outbox.enqueued'));
        const size = await store.auditSize();
        await expectProtocolError(store.withdrawConsent('unknown-consent', undefined, ts(1), event('consent.withdrawn', ts(1))), 'NOT_FOUND');
        expect(await store.auditSize()).toBe(size);
        expect((await store.getOutbox(entry.id))?.state).toBe('queued');
      });

      it('refuses to enqueue under a wholly withdrawn consent, except the withdrawal and erasure confirmation', async () => {
        await store.putConsent(consent(CONSENT_1));
        await store.withdrawConsent(CONSENT_1, undefined, ts(1), event('consent.withdrawn', ts(1)));
        const size = await store.auditSize();
        const refused = await newOutbox();
        await expectProtocolError(store.enqueue(refused, event('outbox.enqueued', ts(2))), 'CONSENT_WITHDRAWN');
        expect(await store.getOutbox(refused.id)).toBeUndefined();
        expect(await store.auditSize()).toBe(size);

        const withdrawal = await newOutbox({ type: MessageTypes.CONSENT_WITHDRAWAL, priority: 0 });
        const confirmation = await newOutbox({ type: MessageTypes.ERASURE_CONFIRMATION });
        expect((await store.enqueue(withdrawal, event('outbox.enqueued', ts(2)))).state).toBe('queued');
        expect((await store.enqueue(confirmation, event('outbox.enqueued', ts(2)))).state).toBe('queued');
      });
    });

    describe('outbox', () => {
      it('enqueue commits the entry with its audit event', async () => {
        const input = await newOutbox({ threadId: 'thread-7' });
        const entry = await store.enqueue(input, event('outbox.enqueued', ts(3), { id: input.id, peer: PEER_B }));
        expect(entry).toEqual({ ...input, state: 'queued', attempts: 0, createdAt: ts(3), updatedAt: ts(3), nextAttemptAt: ts(3) });
        expect(await store.getOutbox(input.id)).toEqual(entry);
        expect(await store.getOutbox('missing')).toBeUndefined();
        // The optional columns set at enqueue (an entry imported already delivered) and no consent.
        const { consentId: _omitted, ...noConsent } = await newOutbox({ lastError: '', receipt: 'r.e.c', problem: '{}', deliveredAt: ts(4), nextAttemptAt: ts(5) });
        const other = await store.enqueue(noConsent, event('outbox.enqueued', ts(3)));
        expect(other).toMatchObject({ nextAttemptAt: ts(5), lastError: '', receipt: 'r.e.c' });
        expect(other).not.toHaveProperty('consentId');
        expect(await store.getOutbox(noConsent.id)).toEqual(other);
        const [record] = await store.readAudit(0, 1);
        expect(record).toMatchObject({ index: 0, kind: 'outbox.enqueued', fields: { id: input.id, peer: PEER_B }, at: ts(3) });

        const delayed = await newOutbox({ nextAttemptAt: ts(60) });
        expect((await store.enqueue(delayed, event('outbox.enqueued', ts(4)))).nextAttemptAt).toBe(ts(60));
      });

      it('refuses a second entry with the same id and keeps the first', async () => {
        const input = await newOutbox();
        await store.enqueue(input, event('outbox.enqueued'));
        const size = await store.auditSize();
        await expect(store.enqueue({ ...input, peer: PEER_A }, event('outbox.enqueued'))).rejects.toBeInstanceOf(ProtocolError);
        expect((await store.getOutbox(input.id))?.peer).toBe(PEER_B);
        expect(await store.auditSize()).toBe(size);
      });

      it('claims due entries by priority, then due time, and leaves entries not yet due', async () => {
        const lateLow = await newOutbox({ priority: 10, nextAttemptAt: ts(0) });
        const earlyLow = await newOutbox({ priority: 10, nextAttemptAt: ts(-5) });
        const high = await newOutbox({ priority: 0, nextAttemptAt: ts(3) });
        const notDue = await newOutbox({ priority: 0, nextAttemptAt: ts(20) });
        for (const e of [lateLow, earlyLow, high, notDue]) await store.enqueue(e, event('outbox.enqueued', ts(-10)));

        const first = await store.claimDue({ now: ts(10), limit: 2, owner: 'w1', leaseMs: 30_000 });
        expect(first.map((e) => e.id)).toEqual([high.id, earlyLow.id]);
        expect(first[0]).toEqual(await store.getOutbox(high.id));
        const second = await store.claimDue({ now: ts(10), limit: 10, owner: 'w2', leaseMs: 30_000 });
        expect(second.map((e) => e.id)).toEqual([lateLow.id]);
        expect(await store.claimDue({ now: ts(10), limit: 10, owner: 'w3', leaseMs: 30_000 })).toEqual([]);
        // Still inside the earlier leases (until ts(40)): only the newly due entry.
        expect((await store.claimDue({ now: ts(20), limit: 10, owner: 'w3', leaseMs: 30_000 })).map((e) => e.id)).toEqual([notDue.id]);
        expect(await store.claimDue({ now: ts(1_000), limit: 0, owner: 'w4', leaseMs: 30_000 })).toEqual([]);
      });

      it('compares due times as instants, whatever their precision', async () => {
        const halfSecond = await newOutbox({ nextAttemptAt: '2026-05-01T10:00:00.500Z' });
        const whole = await newOutbox({ nextAttemptAt: '2026-05-01T10:00:00Z' });
        await store.enqueue(halfSecond, event('outbox.enqueued', ts(-1)));
        await store.enqueue(whole, event('outbox.enqueued', ts(-1)));
        expect((await store.claimDue({ now: '2026-05-01T10:00:00.250Z', limit: 10, owner: 'w', leaseMs: 60_000 })).map((e) => e.id)).toEqual([
          whole.id,
        ]);
        expect((await store.claimDue({ now: '2026-05-01T10:00:00.750Z', limit: 10, owner: 'w', leaseMs: 60_000 })).map((e) => e.id)).toEqual([
          halfSecond.id,
        ]);
      });

      it('never leases one entry to two owners claiming at the same time', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          const e = await newOutbox({ priority: i % 2 === 0 ? 0 : 10 });
          ids.push(e.id);
          await store.enqueue(e, event('outbox.enqueued'));
        }
        const owners = ['w1', 'w2', 'w3', 'w4', 'w5'];
        const results = await Promise.all(owners.map((owner) => store.claimDue({ now: ts(1), limit: 6, owner, leaseMs: 60_000 })));
        const claimed = results.flat().map((e) => e.id);
        expect(claimed).toHaveLength(20);
        expect(new Set(claimed)).toEqual(new Set(ids));

        // Each owner can complete exactly the entries it was given.
        for (const [i, owner] of owners.entries()) {
          for (const entry of results[i] ?? []) {
            const other = owners[(i + 1) % owners.length]!;
            expect(await store.complete(entry.id, other, { state: 'delivered', receipt: 'r', at: ts(2) })).toBe(false);
            expect(await store.complete(entry.id, owner, { state: 'delivered', receipt: 'r', at: ts(2) })).toBe(true);
          }
        }
        expect((await store.countOutboxByState()).delivered).toBe(20);
      });

      it('lets another owner take over an expired lease; the first owner has then lost it', async () => {
        const entry = await newOutbox();
        await store.enqueue(entry, event('outbox.enqueued'));
        expect((await store.claimDue({ now: ts(0), limit: 1, owner: 'A', leaseMs: 30_000 })).map((e) => e.id)).toEqual([entry.id]);
        expect(await store.claimDue({ now: ts(10), limit: 1, owner: 'B', leaseMs: 30_000 })).toEqual([]);
        expect(await store.claimDue({ now: ts(30), limit: 1, owner: 'B', leaseMs: 30_000 })).toEqual([]);
        expect((await store.claimDue({ now: ts(31), limit: 1, owner: 'B', leaseMs: 30_000 })).map((e) => e.id)).toEqual([entry.id]);

        expect(await store.complete(entry.id, 'A', { state: 'delivered', receipt: 'receipt-A', at: ts(32) })).toBe(false);
        expect((await store.getOutbox(entry.id))?.state).toBe('queued');
        expect(await store.complete(entry.id, 'B', { state: 'delivered', receipt: 'receipt-B', at: ts(33) })).toBe(true);
        const done = await store.getOutbox(entry.id);
        expect(done).toMatchObject({ state: 'delivered', receipt: 'receipt-B', deliveredAt: ts(33), updatedAt: ts(33), attempts: 1 });
      });

      it('complete returns false and changes nothing for an unknown, unclaimed or foreign entry', async () => {
        const entry = await newOutbox();
        await store.enqueue(entry, event('outbox.enqueued'));
        const size = await store.auditSize();
        const outcome = { state: 'failed', error: 'x', at: ts(1) } as const;
        expect(await store.complete('missing', 'A', outcome, event('outbox.failed', ts(1)))).toBe(false);
        expect(await store.complete(entry.id, 'A', outcome, event('outbox.failed', ts(1)))).toBe(false);
        await store.claimDue({ now: ts(0), limit: 1, owner: 'A', leaseMs: 30_000 });
        expect(await store.complete(entry.id, 'B', outcome, event('outbox.failed', ts(1)))).toBe(false);
        expect(await store.getOutbox(entry.id)).toMatchObject({ state: 'queued', attempts: 0 });
        expect((await store.getOutbox(entry.id))?.lastError).toBeUndefined();
        expect(await store.auditSize()).toBe(size);
      });

      it('terminal states are final', async () => {
        const outcomes = [
          { state: 'delivered', receipt: 'receipt', at: ts(1) },
          { state: 'rejected', problem: '{"type":"about:blank","code":"CONSENT_EXPIRED"}', receipt: 'rejection-receipt', at: ts(1) },
          { state: 'failed', error: 'expired before delivery', at: ts(1) },
          { state: 'cancelled', error: 'cancelled by caseworker', at: ts(1) },
        ] as const;
        await store.putConsent(consent(CONSENT_1));
        for (const outcome of outcomes) {
          const entry = await newOutbox();
          await store.enqueue(entry, event('outbox.enqueued'));
          await store.claimDue({ now: ts(0), limit: 10, owner: 'A', leaseMs: 1_000 });
          expect(await store.complete(entry.id, 'A', outcome)).toBe(true);
          const done = await store.getOutbox(entry.id);
          expect(done?.state).toBe(outcome.state);

          expect(await store.complete(entry.id, 'A', { state: 'queued', error: 'again', nextAttemptAt: ts(2), at: ts(2) })).toBe(false);
          expect(await store.complete(entry.id, 'A', { state: 'delivered', receipt: 'other', at: ts(2) })).toBe(false);
          expect(await store.claimDue({ now: ts(1_000), limit: 10, owner: 'B', leaseMs: 1_000 })).toEqual([]);
          expect(await store.getOutbox(entry.id)).toEqual(done);
        }
        await store.withdrawConsent(CONSENT_1, undefined, ts(5), event('consent.withdrawn', ts(5)));
        expect((await store.listOutbox()).map((e) => e.state)).toEqual(outcomes.map((o) => o.state));

        const [delivered, rejected, failed, cancelled] = await store.listOutbox();
        expect(delivered).toMatchObject({ receipt: 'receipt', deliveredAt: ts(1), attempts: 1 });
        expect(rejected).toMatchObject({ problem: outcomes[1].problem, receipt: 'rejection-receipt', attempts: 1 });
        expect(failed).toMatchObject({ lastError: 'expired before delivery', attempts: 1 });
        expect(cancelled).toMatchObject({ lastError: 'cancelled by caseworker', attempts: 0 });
      });

      it('a retry counts the attempt, waits for its due time and releases the lease', async () => {
        const entry = await newOutbox();
        await store.enqueue(entry, event('outbox.enqueued'));
        await store.claimDue({ now: ts(0), limit: 1, owner: 'A', leaseMs: 30_000 });
        const size = await store.auditSize();
        expect(
          await store.complete(
            entry.id,
            'A',
            { state: 'queued', error: 'PEER_UNREACHABLE', nextAttemptAt: ts(60), at: ts(1) },
            event('outbox.retry', ts(1), { id: entry.id, attempt: 1 }),
          ),
        ).toBe(true);
        expect(await store.auditSize()).toBe(size + 1);
        expect(await store.getOutbox(entry.id)).toMatchObject({
          state: 'queued',
          attempts: 1,
          lastError: 'PEER_UNREACHABLE',
          nextAttemptAt: ts(60),
          updatedAt: ts(1),
        });
        expect(await store.complete(entry.id, 'A', { state: 'delivered', receipt: 'r', at: ts(2) })).toBe(false);
        expect(await store.claimDue({ now: ts(59), limit: 1, owner: 'B', leaseMs: 30_000 })).toEqual([]);
        const [again] = await store.claimDue({ now: ts(60), limit: 1, owner: 'B', leaseMs: 30_000 });
        expect(again).toMatchObject({ id: entry.id, attempts: 1 });
        expect(await store.complete(entry.id, 'B', { state: 'delivered', receipt: 'receipt', at: ts(61) })).toBe(true);
        expect(await store.getOutbox(entry.id)).toMatchObject({ state: 'delivered', attempts: 2, receipt: 'receipt', deliveredAt: ts(61) });
      });

      it('counts entries by state, every state present', async () => {
        expect(await store.countOutboxByState()).toEqual({ queued: 0, delivered: 0, rejected: 0, cancelled: 0, failed: 0 });
        const entries = await Promise.all([newOutbox(), newOutbox(), newOutbox(), newOutbox()]);
        for (const e of entries) await store.enqueue(e, event('outbox.enqueued'));
        await store.claimDue({ now: ts(0), limit: 3, owner: 'A', leaseMs: 1_000 });
        await store.complete(entries[0]!.id, 'A', { state: 'delivered', receipt: 'r', at: ts(1) });
        await store.complete(entries[1]!.id, 'A', { state: 'failed', error: 'e', at: ts(1) });
        await store.complete(entries[2]!.id, 'A', { state: 'queued', error: 'e', nextAttemptAt: ts(9), at: ts(1) });
        expect(await store.countOutboxByState()).toEqual({ queued: 2, delivered: 1, rejected: 0, cancelled: 0, failed: 1 });
      });

      it('finds the earliest-due queued entry to a peer below a priority, leased or not', async () => {
        expect(await store.nextQueuedBelow(PEER_A, 10)).toBeUndefined();
        const ordinary = await newOutbox({ peer: PEER_A, priority: 10, nextAttemptAt: ts(1) });
        const later = await newOutbox({ peer: PEER_A, priority: 0, nextAttemptAt: ts(30) });
        const sooner = await newOutbox({ peer: PEER_A, priority: 5, nextAttemptAt: ts(20) });
        const elsewhere = await newOutbox({ peer: PEER_B, priority: 0, nextAttemptAt: ts(2) });
        for (const e of [ordinary, later, sooner, elsewhere]) await store.enqueue(e, event('outbox.enqueued'));
        expect(await store.nextQueuedBelow(PEER_A, 10)).toBe(ts(20));
        expect(await store.nextQueuedBelow(PEER_A, 5)).toBe(ts(30));
        expect(await store.nextQueuedBelow(PEER_A, 0)).toBeUndefined();
        // A leased entry still counts; a delivered one no longer does.
        expect((await store.claimDue({ now: ts(25), limit: 10, owner: 'A', leaseMs: 1_000 })).map((e) => e.id)).toContain(sooner.id);
        expect(await store.nextQueuedBelow(PEER_A, 10)).toBe(ts(20));
        await store.complete(sooner.id, 'A', { state: 'delivered', receipt: 'r', at: ts(26) });
        expect(await store.nextQueuedBelow(PEER_A, 10)).toBe(ts(30));
      });

      it('lists entries by creation time, filtered by state, peer, consent and thread', async () => {
        const one = await newOutbox({ peer: PEER_A, threadId: 't-1' });
        const two = await newOutbox({ peer: PEER_B, threadId: 't-1', consentId: CONSENT_2 });
        const three = await newOutbox({ peer: PEER_B, threadId: 't-2' });
        await store.enqueue(three, event('outbox.enqueued', ts(3)));
        await store.enqueue(one, event('outbox.enqueued', ts(1)));
        await store.enqueue(two, event('outbox.enqueued', ts(2)));
        await store.claimDue({ now: ts(5), limit: 10, owner: 'A', leaseMs: 1_000 });
        await store.complete(two.id, 'A', { state: 'delivered', receipt: 'r', at: ts(6) });

        const ids = (entries: OutboxEntry[]): string[] => entries.map((e) => e.id);
        expect(ids(await store.listOutbox())).toEqual([one.id, two.id, three.id]);
        expect(ids(await store.listOutbox({ peer: PEER_B }))).toEqual([two.id, three.id]);
        expect(ids(await store.listOutbox({ threadId: 't-1' }))).toEqual([one.id, two.id]);
        expect(ids(await store.listOutbox({ consentId: CONSENT_2 }))).toEqual([two.id]);
        expect(ids(await store.listOutbox({ state: 'delivered' }))).toEqual([two.id]);
        expect(ids(await store.listOutbox({ state: 'queued', peer: PEER_B }))).toEqual([three.id]);
        expect(ids(await store.listOutbox({ limit: 2 }))).toEqual([one.id, two.id]);
        expect(await store.listOutbox({ state: 'failed' })).toEqual([]);
      });
    });

    describe('inbox', () => {
      it('stores a new message with the receipt made for its audit index', async () => {
        await store.appendAudit(event('node.started'));
        const input = await newInbound();
        const maker = receiptMaker();
        const result = await store.acceptInbound(input, event('inbox.accepted', ts(0), { id: input.id }), maker.make);
        expect(maker.calls).toEqual([1]);
        expect(result).toEqual({ status: 'stored', entry: { ...input, receipt: receiptFor(1) } });
        expect(await store.getInbox(input.id)).toEqual(result.entry);
        expect(await store.getInbox('missing')).toBeUndefined();
        expect(await store.auditSize()).toBe(2);
        expect((await store.readAudit(1, 2))[0]).toMatchObject({ index: 1, kind: 'inbox.accepted', fields: { id: input.id } });
      });

      it('returns the stored entry as a later read gives it, with and without the optional fields', async () => {
        const { consentId: _omitted, ...bare } = await newInbound({ categories: ['identification'] });
        const full = await newInbound({ erasedAt: ts(9) });
        delete full.jwe;
        delete full.sdJwt;
        for (const input of [bare, full]) {
          const result = await store.acceptInbound(input, event('inbox.accepted', ts(1), { id: input.id }), receiptMaker().make);
          expect(result.status).toBe('stored');
          expect(await store.getInbox(input.id)).toEqual(result.entry);
          input.categories.push('mutated-after-the-call');
          expect(result.entry.categories).not.toContain('mutated-after-the-call');
        }
      });

      it('answers a duplicate with the original entry and receipt, and records nothing', async () => {
        const input = await newInbound();
        const first = await store.acceptInbound(input, event('inbox.accepted'), receiptMaker().make);
        const size = await store.auditSize();
        const maker = receiptMaker();
        const again = await store.acceptInbound({ ...input, receivedAt: ts(300) }, event('inbox.accepted', ts(300)), maker.make);
        expect(again.status).toBe('duplicate');
        expect(again.entry).toEqual(first.entry);
        expect(again.entry.receipt).toBe(receiptFor(0));
        expect(maker.calls).toEqual([]);
        expect(await store.auditSize()).toBe(size);
      });

      it('reports a conflict for the same id with other bytes and changes nothing', async () => {
        const input = await newInbound();
        const first = await store.acceptInbound(input, event('inbox.accepted'), receiptMaker().make);
        const size = await store.auditSize();
        const maker = receiptMaker();
        const forged = await newInbound({ id: input.id, jwe: 'eyJlbmMiOiJBMjU2R0NNIn0.other.iv.ct.tag', sender: PEER_B });
        const result = await store.acceptInbound(forged, event('inbox.accepted', ts(5)), maker.make);
        expect(result).toEqual({ status: 'conflict', entry: first.entry });
        expect(maker.calls).toEqual([]);
        expect(await store.getInbox(input.id)).toEqual(first.entry);
        expect(await store.auditSize()).toBe(size);
      });

      it('stores nothing when the receipt cannot be made', async () => {
        await store.appendAudit(event('node.started'));
        const input = await newInbound();
        const failure = new Error('signing key unavailable');
        await expect(
          store.acceptInbound(input, event('inbox.accepted'), async () => {
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await store.getInbox(input.id)).toBeUndefined();
        expect(await store.auditSize()).toBe(1);

        const maker = receiptMaker();
        expect((await store.acceptInbound(input, event('inbox.accepted'), maker.make)).status).toBe('stored');
        expect(maker.calls).toEqual([1]);
      });

      it('shows nothing of an acceptance before it commits', async () => {
        const input = await newInbound();
        const called = deferred<number>();
        const release = deferred<string>();
        const accepting = store.acceptInbound(input, event('inbox.accepted'), (index) => {
          called.resolve(index);
          return release.promise;
        });
        try {
          expect(await called.promise).toBe(0);
          expect(await store.getInbox(input.id)).toBeUndefined();
          expect(await store.auditSize()).toBe(0);
          expect(await store.readAudit(0, 10)).toEqual([]);
        } finally {
          // Unblock the transaction even when an expectation failed, so cleanup can close the store.
          release.resolve('late-receipt');
        }
        expect((await accepting).status).toBe('stored');
        expect((await store.getInbox(input.id))?.receipt).toBe('late-receipt');
        expect(await store.auditSize()).toBe(1);
      });

      it('stores a message once when the same delivery arrives concurrently', async () => {
        const input = await newInbound();
        const maker = receiptMaker();
        const results = await Promise.all(Array.from({ length: 5 }, () => store.acceptInbound(input, event('inbox.accepted'), maker.make)));
        expect(results.filter((r) => r.status === 'stored')).toHaveLength(1);
        expect(results.filter((r) => r.status === 'duplicate')).toHaveLength(4);
        expect(new Set(results.map((r) => r.entry.receipt))).toEqual(new Set([receiptFor(0)]));
        expect(maker.calls).toEqual([0]);
        expect(await store.auditSize()).toBe(1);
      });

      it('lists messages by reception time, filtered by sender, thread and consent', async () => {
        const one = await newInbound({ sender: PEER_A, threadId: 't-1', receivedAt: ts(1) });
        const two = await newInbound({ sender: PEER_B, threadId: 't-1', consentId: CONSENT_2, receivedAt: ts(2) });
        const three = await newInbound({ sender: PEER_B, threadId: 't-2', receivedAt: ts(3) });
        for (const e of [three, one, two]) await store.acceptInbound(e, event('inbox.accepted'), receiptMaker().make);
        const ids = (entries: InboxEntry[]): string[] => entries.map((e) => e.id);
        expect(ids(await store.listInbox())).toEqual([one.id, two.id, three.id]);
        expect(ids(await store.listInbox({ sender: PEER_B }))).toEqual([two.id, three.id]);
        expect(ids(await store.listInbox({ threadId: 't-1' }))).toEqual([one.id, two.id]);
        expect(ids(await store.listInbox({ consentId: CONSENT_2 }))).toEqual([two.id]);
        expect(ids(await store.listInbox({ sender: PEER_B, threadId: 't-2' }))).toEqual([three.id]);
        expect(ids(await store.listInbox({ limit: 1 }))).toEqual([one.id]);
      });

      it('erases personal data under a consent and keeps the evidence', async () => {
        const a = await newInbound({ sender: PEER_A, receivedAt: ts(1) });
        const b = await newInbound({ sender: PEER_B, receivedAt: ts(2) });
        const other = await newInbound({ consentId: CONSENT_2, receivedAt: ts(3) });
        for (const e of [a, b, other]) await store.acceptInbound(e, event('inbox.accepted'), receiptMaker().make);
        const before = await Promise.all([a, b].map((e) => store.getInbox(e.id)));
        const size = await store.auditSize();

        const erased = await store.eraseInboundByConsent(CONSENT_1, ts(10), event('inbox.erased', ts(10), { consent: CONSENT_1 }));
        expect(erased).toEqual([a.id, b.id]);
        for (const original of before) {
          const entry = await store.getInbox(original!.id);
          expect(entry?.sdJwt).toBeUndefined();
          expect(entry?.jwe).toBeUndefined();
          expect(entry?.erasedAt).toBe(ts(10));
          const { sdJwt: _sd, jwe: _jwe, ...evidence } = original!;
          expect(entry).toEqual({ ...evidence, erasedAt: ts(10) });
        }
        expect(await store.getInbox(other.id)).toMatchObject({ sdJwt: other.sdJwt, jwe: other.jwe });
        expect((await store.getInbox(other.id))?.erasedAt).toBeUndefined();
        expect(await store.auditSize()).toBe(size + 1);
        expect((await store.readAudit(size, size + 1))[0]).toMatchObject({ kind: 'inbox.erased', fields: { consent: CONSENT_1 } });

        expect(await store.eraseInboundByConsent(CONSENT_1, ts(11), event('inbox.erased', ts(11)))).toEqual([]);
        expect((await store.getInbox(a.id))?.erasedAt).toBe(ts(10));

        // The kept digest and receipt still answer a redelivery of the erased message.
        const maker = receiptMaker();
        const redelivered = await store.acceptInbound(a, event('inbox.accepted', ts(12)), maker.make);
        expect(redelivered.status).toBe('duplicate');
        expect(redelivered.entry.receipt).toBe(before[0]!.receipt);
        expect(redelivered.entry.sdJwt).toBeUndefined();
        expect(maker.calls).toEqual([]);
      });
    });

    describe('audit log', () => {
      it('appends at contiguous indices from 0 with the shared leaf hash', async () => {
        const events: AuditEvent[] = [
          event('node.started', ts(0), {}),
          event('outbox.enqueued', ts(1), { id: 'm-1', peer: PEER_B, priority: 10 }),
          event('consent.withdrawn', ts(2), { consent: CONSENT_1, purposes: ['monitoring', 'referral'], whole: false }),
          event('inbox.rejected', ts(3), { id: 'm-2', code: 'CONSENT_EXPIRED', consent: null }),
          event('unicode', ts(4), { label: 'Référence – état ✓', z: 1.5, a: -0 }),
        ];
        const appended = [];
        for (const e of events) appended.push(await store.appendAudit(e));
        expect(appended.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
        for (const record of appended) {
          expect(record.leafHash).toBe(auditLeafHash(record));
          expect(record.leafHash).toMatch(/^[A-Za-z0-9_-]{43}$/);
        }
        expect(new Set(appended.map((r) => r.leafHash)).size).toBe(5);
        expect(appended[2]).toMatchObject(events[2]!);

        expect(await store.auditSize()).toBe(5);
        expect(await store.readAudit(0, 5)).toEqual(appended);
        expect((await store.readAudit(1, 3)).map((r) => r.index)).toEqual([1, 2]);
        expect(await store.readAudit(5, 10)).toEqual([]);
        expect(await store.readAudit(3, 3)).toEqual([]);
        for (const record of await store.readAudit(0, 5)) expect(auditLeafHash(record)).toBe(record.leafHash);
      });

      it('gives concurrent appends distinct contiguous indices', async () => {
        const records = await Promise.all(Array.from({ length: 12 }, (_, i) => store.appendAudit(event('tick', ts(i), { i }))));
        expect(records.map((r) => r.index).sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i));
        for (const record of records) expect(record.fields['i']).toBeTypeOf('number');
        expect(await store.auditSize()).toBe(12);
      });

      it('keeps checkpoints that only extend the latest, in size order', async () => {
        const cp = (size: number, at: string) => ({ size, root: `root-${size}`, at, jws: `cp.${size}.sig` });
        expect(await store.latestCheckpoint()).toBeUndefined();
        expect(await store.listCheckpoints()).toEqual([]);
        expect(await store.putCheckpoint(cp(0, ts(0)))).toBe(true);
        expect(await store.putCheckpoint(cp(3, ts(5)))).toBe(true);
        // Neither the same size, nor a smaller one, nor an earlier time than the latest.
        expect(await store.putCheckpoint(cp(3, ts(6)))).toBe(false);
        expect(await store.putCheckpoint(cp(2, ts(7)))).toBe(false);
        expect(await store.putCheckpoint(cp(9, ts(4)))).toBe(false);
        expect(await store.putCheckpoint(cp(9, ts(5)))).toBe(true);
        expect(await store.latestCheckpoint()).toEqual(cp(9, ts(5)));
        expect(await store.listCheckpoints()).toEqual([cp(0, ts(0)), cp(3, ts(5)), cp(9, ts(5))]);
        expect(await store.listCheckpoints(0, 1)).toEqual([cp(3, ts(5))]);
        expect(await store.listCheckpoints(9)).toEqual([]);
      });

      it('stores one of several concurrent checkpoints of one size', async () => {
        const results = await Promise.all([5, 5, 5, 5].map((size, i) => store.putCheckpoint({ size, root: `r${i}`, at: ts(i), jws: `cp.${i}.sig` })));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.listCheckpoints()).toHaveLength(1);
      });

      it('keeps every version of node documents, idempotently', async () => {
        await store.putNodeDocument({ nodeId: PEER_A, version: 2, jws: '{"v":2}' });
        await store.putNodeDocument({ nodeId: PEER_A, version: 1, jws: '{"v":1}' });
        await store.putNodeDocument({ nodeId: PEER_A, version: 2, jws: '{"v":2}' });
        await store.putNodeDocument({ nodeId: PEER_B, version: 1, jws: '{"b":1}' });
        expect(await store.listNodeDocuments(PEER_A)).toEqual([
          { nodeId: PEER_A, version: 1, jws: '{"v":1}' },
          { nodeId: PEER_A, version: 2, jws: '{"v":2}' },
        ]);
        expect(await store.listNodeDocuments('https://unknown.example')).toEqual([]);
      });
    });

    describe('tokens', () => {
      it('stores tokens, finds them by hash and records revocation', async () => {
        const admin: TokenRecord = { id: 'tok-1', hash: 'hash-admin', role: 'administrator', label: 'ops', createdAt: ts(1) };
        const worker: TokenRecord = { id: 'tok-2', hash: 'hash-worker', role: 'caseworker', label: 'case tool', createdAt: ts(0) };
        await store.putToken(admin);
        await store.putToken(worker);
        expect(await store.findTokenByHash('hash-admin')).toEqual(admin);
        expect(await store.findTokenByHash('hash-unknown')).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['tok-2', 'tok-1']);

        await store.putToken({ ...worker, revokedAt: ts(5) });
        expect(await store.findTokenByHash('hash-worker')).toEqual({ ...worker, revokedAt: ts(5) });
        expect(await store.listTokens()).toHaveLength(2);
      });
    });

    describe('remembered keys', () => {
      it('records a key once until it expires', async () => {
        expect(await store.remember('nonce-1', future())).toBe(true);
        expect(await store.remember('nonce-1', future())).toBe(false);
        expect(await store.remember('nonce-2', future())).toBe(true);

        expect(await store.remember('nonce-old', past())).toBe(true);
        expect(await store.remember('nonce-old', future())).toBe(true);
        expect(await store.remember('nonce-old', future())).toBe(false);
      });

      it('keeps one winner among concurrent first sightings', async () => {
        const results = await Promise.all(Array.from({ length: 6 }, () => store.remember('nonce-race', future())));
        expect(results.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('lifecycle', () => {
      it('finds everything again after close and reopen', async () => {
        const peer: PeerRecord = { nodeId: PEER_B, fingerprints: ['fp-b'], document: '{"v":1}', documentVersion: 1, addedAt: ts(0), updatedAt: ts(0) };
        await store.putPeer(peer);
        await store.putAgreement({ id: 'agr-1', version: 1, jws: '{"a":1}', terminations: [], registeredAt: ts(0) });
        await store.addTermination('agr-1', 'term.sig');
        await store.putConsent(consent(CONSENT_1));
        await store.putConsent(consent(CONSENT_2));
        const withdrawn = await newOutbox({ consentId: CONSENT_2 });
        await store.enqueue(withdrawn, event('outbox.enqueued'));
        await store.withdrawConsent(CONSENT_2, undefined, ts(1), event('consent.withdrawn', ts(1)));
        const delivered = await newOutbox();
        await deliver(delivered, ts(2));
        const waiting = await newOutbox({ nextAttemptAt: ts(50) });
        await store.enqueue(waiting, event('outbox.enqueued', ts(3)));
        const inbound = await newInbound();
        const accepted = await store.acceptInbound(inbound, event('inbox.accepted', ts(4)), receiptMaker().make);
        const token: TokenRecord = { id: 'tok-1', hash: 'h-1', role: 'auditor', label: 'dpa', createdAt: ts(0) };
        await store.putToken(token);
        expect(await store.remember('nonce-kept', future())).toBe(true);

        const snapshot = {
          peers: await store.listPeers(),
          agreements: await store.listAgreements(),
          consents: await store.listConsents(),
          outbox: await store.listOutbox(),
          inbox: await store.listInbox(),
          audit: await store.readAudit(0, 1_000),
          counts: await store.countOutboxByState(),
          tokens: await store.listTokens(),
        };
        // Three enqueues, one withdrawal, one acceptance; completions here carried no audit event.
        expect(snapshot.audit).toHaveLength(5);

        // A write still in flight when close() is called completes before the store closes.
        const inFlight = await newInbound();
        const release = deferred<string>();
        const called = deferred<number>();
        const accepting = store.acceptInbound(inFlight, event('inbox.accepted', ts(5)), (index) => {
          called.resolve(index);
          return release.promise;
        });
        await called.promise;
        const closing = store.close();
        release.resolve('receipt-in-flight');
        expect((await accepting).status).toBe('stored');
        await closing;
        await store.close();
        await expectProtocolError(store.getPeer(PEER_B), 'STORE_UNAVAILABLE');
        await expectProtocolError(store.appendAudit(event('after-close')), 'STORE_UNAVAILABLE');

        const reopened = await fixture.reopen();
        expect(await reopened.listPeers()).toEqual(snapshot.peers);
        expect(await reopened.getPeer(PEER_B)).toEqual(peer);
        expect(await reopened.listAgreements()).toEqual(snapshot.agreements);
        expect(await reopened.listConsents()).toEqual(snapshot.consents);
        expect((await reopened.getConsent(CONSENT_2))?.withdrawnAt).toBe(ts(1));
        expect(await reopened.listOutbox()).toEqual(snapshot.outbox);
        expect(await reopened.countOutboxByState()).toEqual(snapshot.counts);
        expect(await reopened.getInbox(inbound.id)).toEqual(accepted.entry);
        expect((await reopened.getInbox(inFlight.id))?.receipt).toBe('receipt-in-flight');
        expect(await reopened.listInbox()).toHaveLength(2);
        const audit = await reopened.readAudit(0, 1_000);
        expect(audit.slice(0, snapshot.audit.length)).toEqual(snapshot.audit);
        expect(audit).toHaveLength(snapshot.audit.length + 1);
        for (const record of audit) expect(auditLeafHash(record)).toBe(record.leafHash);
        expect(await reopened.listTokens()).toEqual(snapshot.tokens);
        expect(await reopened.remember('nonce-kept', future())).toBe(false);

        // Work carries on where it stopped: the waiting entry is claimable when due.
        const claimed = await reopened.claimDue({ now: ts(50), limit: 10, owner: 'after-restart', leaseMs: 1_000 });
        expect(claimed.map((e) => e.id)).toEqual([waiting.id]);
        expect((await reopened.appendAudit(event('node.restarted', ts(60)))).index).toBe(audit.length);
      });
    });
  });
}
