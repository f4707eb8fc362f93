/**
 * A running node: wires identity, store, trust store, policy, outbox worker, HTTP server and
 * webhooks together and exposes the service methods the CLI, the demo and tests call.
 */
import type { DestinationStream, Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { ProtocolError, type Agreement, type GeneralJws } from '@passerelle/protocol';
import { createGuardedDispatcher, type HostLookup } from './net/address-guard.js';
import type { ResolvedConfig } from './config.js';
import { NodeEvents } from './events.js';
import { loadIdentity, type NodeIdentity } from './identity/node-identity.js';
import { loadNode } from './init.js';
import { rotateKeys, type RotateKeysOptions } from './identity/rotate-keys.js';
import { createLogger } from './observability/logger.js';
import { createNodeMetrics } from './observability/node-metrics.js';
import type { RunningNode } from './running-node.js';
import { openStore } from './open-store.js';
import { CircuitBreakers } from './outbox/circuit-breaker.js';
import { sendMessage, type SendInput } from './outbox/send-message.js';
import { OutboxWorker } from './outbox/worker.js';
import { PolicyContext } from './policy/policy-context.js';
import type { AcceptDeps } from './inbox/accept-inbound.js';
import { createServer } from './http/server.js';
import { inboxEdgeGate, registerPeerRoutes } from './http/peer-routes.js';
import { registerOpsRoutes } from './http/ops-routes.js';
import { registerLocalApi } from './http/local-api/register.js';
import { TokenBuckets } from './http/token-bucket.js';
import type { Store } from './store/types.js';
import { createDocumentFetcher } from './trust/document-fetcher.js';
import { nodeKeyResolver, senderKeyResolver } from './trust/key-resolvers.js';
import { TrustStore } from './trust/trust-store.js';
import { createToken, revokeToken, type TokenRole } from './auth/tokens.js';
import { listConsents, readConsent, recordConsent, withdrawConsent, type RecordConsentInput, type WithdrawConsentInput } from './services/consents.js';
import { listAgreements, registerAgreement, registerTermination, signAgreementAsNode, terminateAgreement } from './services/agreements.js';
import { inboxSummary, listThreads, outboxSummary, readInboxMessage, readThread } from './services/messages-view.js';
import { PeerDirectory } from './services/peers.js';
import { WebhookNotifier } from './webhooks/webhook-notifier.js';
import { exportForPeer, importTransfer, importTransferAnswer } from './transfer/offline-transfer.js';
import { AuditLog } from './audit/audit-log.js';
import { NodeAuditEvents } from './audit/audit-events.js';
import { buildAuditBundle, type AuditExportOptions } from './audit/bundle-export.js';
import { AuditGate, failClosedStore } from './audit/fail-closed-store.js';

export type { RunningNode } from './running-node.js';

export interface StartNodeOptions {
  /** The node's directory (config.json, keys/, node-document.json). */
  dir?: string;
  /** Or an already resolved configuration (its dataDir holds the keys). */
  config?: ResolvedConfig;
  /** A pino logger, or a destination for the node's own logger. */
  logger?: Logger;
  logDestination?: DestinationStream;
  /** Start the HTTP server (default true). */
  listen?: boolean;
  /** Start the outbox worker (default true). */
  worker?: boolean;
  /** Clock (tests). */
  now?: () => Date;
  /** Environment to honour PASSERELLE_STORE from (pass process.env); nothing is read otherwise. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Resolver for outbound connections (tests inject one); the system resolver otherwise. */
  lookup?: HostLookup;
}

function guardedDispatcher(config: ResolvedConfig, lookup: HostLookup | undefined): Dispatcher {
  return createGuardedDispatcher({
    allowPrivate: config.devMode,
    lookup,
    connectTimeoutMs: config.limits.outboundConnectTimeoutMs,
    headersTimeoutMs: config.limits.outboundTimeoutMs,
    bodyTimeoutMs: config.limits.outboundTimeoutMs,
  });
}

export async function startNode(options: StartNodeOptions): Promise<RunningNode> {
  let config: ResolvedConfig;
  let identity: NodeIdentity;
  if (options.config) {
    config = options.config;
    identity = await loadIdentity(config);
  } else if (options.dir) {
    ({ config, identity } = await loadNode(options.dir));
  } else {
    throw new ProtocolError('MALFORMED', 'startNode needs a directory or a configuration');
  }
  const now = options.now ?? (() => new Date());
  const logger = options.logger ?? createLogger({ level: config.logLevel, ...(options.logDestination ? { destination: options.logDestination } : {}) });
  const rawStore = await openStore(config.store, config.dataDir, options.env);
  // Every component writes through the fail-closed view: an audit append that fails stops the node (spec/node.md §9.3).
  const gate = new AuditGate(logger, now);
  const store = failClosedStore(rawStore, gate);
  const events = new NodeEvents();
  const dispatcher = guardedDispatcher(config, options.lookup);
  const closers: (() => Promise<void>)[] = [];
  try {
    // Refuses to start on a truncated or altered log (AUDIT_LOG_INCONSISTENT), before anything is accepted or sent.
    const auditLog = await AuditLog.open({ store: rawStore, identity, gate, logger, now, checkpointIntervalMs: config.audit.checkpointIntervalMs });
    await store.putNodeDocument({ nodeId: identity.id, version: identity.document.version, jws: JSON.stringify(identity.documentJws) });
    // Signed before the first receipt goes out, so that every receipt carries a checkpoint.
    await auditLog.checkpoint();
    const trust = new TrustStore({
      store,
      logger,
      refreshIntervalMs: config.limits.documentRefreshIntervalMs,
      now,
      fetchDocument: createDocumentFetcher({
        dispatcher,
        allowPrivate: config.devMode,
        lookup: options.lookup,
        timeoutMs: config.limits.outboundTimeoutMs,
        maxBytes: config.limits.maxResponseBytes,
      }),
    });
    await trust.load();
    const resolveNode = nodeKeyResolver(identity, trust);
    const resolveSender = senderKeyResolver(identity, trust);
    const policy = new PolicyContext(store, resolveNode);
    const breakers = new CircuitBreakers({
      threshold: config.outbox.breakerThreshold,
      cooldownMs: config.outbox.breakerCooldownMs,
      maxCooldownMs: Math.max(config.outbox.breakerCooldownMs, config.outbox.backoffCapMs),
    });
    const metrics = createNodeMetrics(store, breakers);
    const worker = new OutboxWorker(
      {
        store,
        trust,
        policy,
        events,
        metrics,
        logger,
        breakers,
        now,
        deliver: {
          identity,
          trust,
          backoffCapMs: config.outbox.backoffCapMs,
          now,
          client: { dispatcher, allowPrivate: config.devMode, lookup: options.lookup, timeoutMs: config.limits.outboundTimeoutMs, maxResponseBytes: config.limits.maxResponseBytes },
        },
      },
      {
        pollIntervalMs: config.outbox.pollIntervalMs,
        batchSize: config.outbox.batchSize,
        perPeerConcurrency: config.outbox.perPeerConcurrency,
        leaseMs: config.outbox.leaseMs,
        backoffBaseMs: config.outbox.backoffBaseMs,
        backoffCapMs: config.outbox.backoffCapMs,
        maxAttempts: config.outbox.maxAttempts,
        attemptTimeoutMs: config.limits.outboundTimeoutMs,
      },
    );
    const send = async (input: SendInput) => sendMessage(
        {
          identity,
          store,
          trust,
          policy,
          events,
          now,
          wake: (rightsTo) => {
            if (rightsTo) worker.invalidateRights(rightsTo);
            worker.wake();
          },
        },
        input,
      );
    const webhooks = new WebhookNotifier({ store, logger, metrics, events, webhooks: config.webhooks, now, backoffBaseMs: config.outbox.backoffBaseMs, backoffCapMs: config.outbox.backoffCapMs, timeoutMs: config.limits.outboundTimeoutMs });
    const acceptDeps: AcceptDeps = {
      identity,
      store,
      policy,
      resolveSenderKey: resolveSender,
      events,
      metrics,
      logger,
      maxSkewSeconds: config.limits.maxClockSkewSeconds,
      now,
      withdrawals: { store, logger, now, send },
      onAccepted: (entry) => webhooks.notify(entry),
      auditCheckpoint: () => auditLog.latestCheckpoint(),
      ...(config.faults?.delayAfterCommitMs ? { delayAfterCommitMs: config.faults.delayAfterCommitMs } : {}),
    };
    const peers = new PeerDirectory(trust, store, now);
    const consentDeps = { identity, store, events, send, now, attempting: (id: string) => worker.attempting(id) };
    const agreementDeps = { identity, store, policy, resolve: resolveNode, now };
    const viewDeps = { identity, store, resolveSenderKey: resolveSender, now };
    const transferDeps = { identity, store, trust, accept: acceptDeps, logger, events, now };

    const service = {
      addPeer: (nodeId: string, fingerprints: readonly string[], opts?: { fetchDocument?: boolean }) => peers.add(nodeId, fingerprints, opts),
      listPeers: () => peers.list(),
      refreshPeer: (nodeId: string) => peers.refresh(nodeId),
      signAgreement: (p: Agreement | GeneralJws) => signAgreementAsNode(agreementDeps, p),
      registerAgreement: (jws: GeneralJws) => registerAgreement(agreementDeps, jws),
      listAgreements: () => listAgreements(agreementDeps),
      terminateAgreement: (id: string, reason: string) => terminateAgreement(agreementDeps, id, reason),
      registerTermination: (jws: string) => registerTermination(agreementDeps, jws),
      recordConsent: (input: RecordConsentInput) => recordConsent(consentDeps, input),
      withdrawConsent: (id: string, input?: WithdrawConsentInput) => withdrawConsent(consentDeps, id, input),
      listConsents: (reader = 'local') => listConsents(consentDeps, reader),
      readConsent: (id: string, reader = 'local') => readConsent(consentDeps, id, reader),
      send: async (input: SendInput) => outboxSummary(await send(input)),
      getOutbox: async (id: string) => {
        const e = await store.getOutbox(id);
        return e ? outboxSummary(e) : undefined;
      },
      listOutbox: async (filter?: Parameters<Store['listOutbox']>[0]) => (await store.listOutbox(filter)).map(outboxSummary),
      listInbox: async (filter?: Parameters<Store['listInbox']>[0]) => (await store.listInbox(filter)).map(inboxSummary),
      readInbox: async (id: string, reader = 'local') => {
        const e = await store.getInbox(id);
        if (!e) throw new ProtocolError('NOT_FOUND', 'No inbound message with this id');
        return readInboxMessage(viewDeps, e, reader);
      },
      listThreads: () => listThreads(viewDeps),
      readThread: (threadId: string, reader = 'local') => readThread(viewDeps, threadId, reader),
      createToken: (role: TokenRole, label: string) => createToken(store, role, label, now()),
      revokeToken: (id: string) => revokeToken(store, id, now()),
      readAudit: (from: number, to: number) => store.readAudit(from, to),
      exportAuditBundle: (input: AuditExportOptions = {}) => buildAuditBundle({ store, identity, auditLog, now }, input),
      audit: auditLog,
    };

    const peerDeps = {
      config,
      identity,
      trust,
      buckets: new TokenBuckets(config.limits.peerRateLimit),
      accept: acceptDeps,
      now,
    };
    const app = createServer(config, logger, [inboxEdgeGate(peerDeps)]);
    registerPeerRoutes(app, peerDeps);
    registerOpsRoutes(app, { store, registry: metrics.registry, workerHealthy: () => worker.healthy(), now });
    registerLocalApi(app, {
      store,
      service,
      identity,
      buckets: new TokenBuckets(config.limits.apiRateLimit),
    });

    let url: string | undefined;
    if (options.listen !== false) {
      await app.listen({ host: config.listen.host, port: config.listen.port });
      const address = app.server.address();
      if (address && typeof address === 'object') {
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        url = `http://${host}:${address.port}`;
      }
      closers.push(() => app.close());
    } else {
      await app.ready();
      closers.push(() => app.close());
    }
    if (options.worker !== false) {
      worker.start();
      await webhooks.recover();
    }
    closers.unshift(async () => {
      await worker.stop();
      await webhooks.stop();
    });
    auditLog.start();
    // Last, once nothing else writes: the final checkpoint covers the log as the node leaves it.
    closers.push(() => auditLog.stop());

    let closed = false;
    const node: RunningNode = {
      id: identity.id,
      url,
      config,
      identity,
      store,
      events,
      logger,
      metrics,
      ...service,
      fingerprints: () => identity.fingerprints(),
      nodeDocument: () => identity.documentJws,
      exportForPeer: (peer, file) => exportForPeer(transferDeps, peer, file),
      importTransfer: (file, answerFile) => importTransfer(transferDeps, file, answerFile),
      importTransferAnswer: (file) => importTransferAnswer({ ...transferDeps, worker }, file),
      rotateKeys: async (opts?: RotateKeysOptions) => {
        const rotated = await rotateKeys(identity, config, { ...opts, now: opts?.now ?? now() });
        await store.putNodeDocument({ nodeId: identity.id, version: identity.document.version, jws: JSON.stringify(identity.documentJws) });
        await store.appendAudit({
          kind: NodeAuditEvents.KEY_ROTATED,
          fields: {
            version: rotated.version,
            ...(rotated.signingKid ? { signingKid: rotated.signingKid } : {}),
            ...(rotated.encryptionKid ? { encryptionKid: rotated.encryptionKid } : {}),
            fingerprints: rotated.fingerprints,
          },
          at: now().toISOString(),
        });
        return rotated;
      },
      flush: () => worker.wake(),
      waitForOutbox: async (timeoutMs = 30_000) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if ((await store.countOutboxByState()).queued === 0) return;
          if (Date.now() > deadline) throw new ProtocolError('INTERNAL', 'Outbox still has queued messages');
          worker.wake();
          await new Promise((r) => setTimeout(r, 25));
        }
      },
      close: async () => {
        if (closed) return;
        closed = true;
        for (const c of closers) await c().catch((e: unknown) => logger.error({ err: e }, 'error while closing'));
        await dispatcher.close().catch(() => undefined);
        await store.close();
      },
    };
    return node;
  } catch (e) {
    for (const c of closers) await c().catch(() => undefined);
    await dispatcher.close().catch(() => undefined);
    await store.close();
    throw e;
  }
}
