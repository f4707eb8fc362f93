/**
 * Node configuration (spec/node.md §1): one JSON file per node (`<dataDir>/config.json`),
 * validated with zod. Every limit has an explicit default because the HTTP stack's own defaults
 * are unlimited.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { CountryCode, LanguageTag, NodeId, NodeRole, ProtocolError } from '@passerelle/protocol';

export const CONFIG_FILE = 'config.json';

const Ms = (max: number) => z.number().int().min(0).max(max);

export const LimitsConfig = z
  .strictObject({
    /** Largest request body accepted on the peer API (a sealed message). */
    inboxBodyLimit: z.number().int().min(1024).max(8 * 1024 * 1024).default(2 * 1024 * 1024 + 4096),
    /** Largest request body accepted on the local API. */
    apiBodyLimit: z.number().int().min(1024).max(8 * 1024 * 1024).default(1024 * 1024),
    connectionTimeoutMs: Ms(600_000).default(10_000),
    requestTimeoutMs: Ms(600_000).default(30_000),
    headersTimeoutMs: Ms(600_000).default(10_000),
    keepAliveTimeoutMs: Ms(600_000).default(5_000),
    /** Outbound requests (deliveries, node documents). */
    outboundConnectTimeoutMs: Ms(600_000).default(10_000),
    outboundTimeoutMs: Ms(600_000).default(30_000),
    /** Largest node document or peer response read. */
    maxResponseBytes: z.number().int().min(1024).max(8 * 1024 * 1024).default(256 * 1024),
    /** Per-peer token bucket on POST /inbox. */
    peerRateLimit: z.strictObject({ burst: z.number().int().min(1).max(100_000), perSecond: z.number().positive().max(100_000) }).default({ burst: 60, perSecond: 10 }),
    /** Per-token token bucket on the local API. */
    apiRateLimit: z.strictObject({ burst: z.number().int().min(1).max(100_000), perSecond: z.number().positive().max(100_000) }).default({ burst: 120, perSecond: 20 }),
    /** Minimum interval between two fetches of one peer's node document when a request names an unknown key. */
    documentRefreshIntervalMs: Ms(86_400_000).default(60_000),
    maxClockSkewSeconds: z.number().int().min(1).max(3600).default(300),
  })
  .prefault({});

export const OutboxConfig = z
  .strictObject({
    pollIntervalMs: Ms(600_000).default(1_000),
    batchSize: z.number().int().min(1).max(1000).default(16),
    perPeerConcurrency: z.number().int().min(1).max(64).default(2),
    leaseMs: Ms(3_600_000).default(120_000),
    backoffBaseMs: Ms(3_600_000).default(2_000),
    backoffCapMs: Ms(86_400_000).default(15 * 60_000),
    /** Attempts before a message fails even though it has not expired. */
    maxAttempts: z.number().int().min(1).max(10_000).default(50),
    /** Consecutive transport failures that open a peer's circuit. */
    breakerThreshold: z.number().int().min(1).max(1000).default(5),
    breakerCooldownMs: Ms(86_400_000).default(30_000),
  })
  .prefault({});

/** The audit log's signed checkpoints (spec/node.md §9). */
export const AuditConfig = z
  .strictObject({
    /** A checkpoint is signed this often while the log grows, and also on demand and at shutdown. */
    checkpointIntervalMs: z.number().int().min(100).max(86_400_000).default(60_000),
  })
  .prefault({});

export const WebhookConfig = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** HMAC-SHA256 key shared with the receiving software; at least 16 characters. */
  secret: z.string().min(16).max(512),
});
export type WebhookConfig = z.infer<typeof WebhookConfig>;

/** Deliberate faults for crash tests; refused unless devMode is on. */
export const FaultsConfig = z
  .strictObject({
    /** Delay between committing an inbound message and answering with its receipt. */
    delayAfterCommitMs: Ms(60_000).optional(),
  })
  .optional();

/** `sqlite:<path>` (relative to dataDir) or `postgres://…`; the scheme selects the implementation. */
export const StoreUrl = z.string().regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/i, 'must be sqlite:<path> or a postgres:// URL');

export const NodeConfig = z
  .strictObject({
    /** The node id: its public origin (https, or http on loopback). */
    id: NodeId,
    name: z.string().min(1).max(200),
    country: CountryCode,
    roles: z.array(NodeRole).min(1),
    languages: z.array(LanguageTag).min(1),
    /** Where to listen; derived from `id` when absent. */
    listen: z.strictObject({ host: z.string().min(1).max(255), port: z.number().int().min(0).max(65535) }).optional(),
    /** Directory of keys, node document and the default database; defaults to the config file's directory. */
    dataDir: z.string().min(1).optional(),
    store: StoreUrl.optional(),
    /** Local development: loopback and private peers become reachable. Never in production. */
    devMode: z.boolean().default(false),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    limits: LimitsConfig,
    outbox: OutboxConfig,
    audit: AuditConfig,
    webhooks: z.array(WebhookConfig).max(16).default([]),
    faults: FaultsConfig,
  })
  .superRefine((c, ctx) => {
    if (c.faults && !c.devMode) ctx.addIssue({ code: 'custom', path: ['faults'], message: 'faults are allowed only in devMode' });
    if (c.outbox.backoffCapMs < c.outbox.backoffBaseMs) ctx.addIssue({ code: 'custom', path: ['outbox', 'backoffCapMs'], message: 'must be at least backoffBaseMs' });
    // The worker uses a lease only while one more attempt fits in it with a second to spare
    // (outbox/worker.ts); a shorter lease would leave every message queued for ever.
    if (c.outbox.leaseMs <= c.limits.outboundTimeoutMs + 1000) {
      ctx.addIssue({ code: 'custom', path: ['outbox', 'leaseMs'], message: 'must exceed limits.outboundTimeoutMs by more than one second' });
    }
  });
export type NodeConfig = z.infer<typeof NodeConfig>;
export type NodeConfigInput = z.input<typeof NodeConfig>;

/** A config with every derived value resolved (absolute data dir, store URL, listen address). */
export interface ResolvedConfig extends NodeConfig {
  dataDir: string;
  store: string;
  listen: { host: string; port: number };
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/** Loopback ids listen on their own address; public ones on every interface, behind a TLS proxy. */
export function listenFromId(id: string): { host: string; port: number } {
  const url = new URL(id);
  const host = LOOPBACK.test(url.hostname) ? url.hostname.replace(/^\[|\]$/g, '') : '0.0.0.0';
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { host, port };
}

export function parseConfig(value: unknown, baseDir: string): ResolvedConfig {
  const parsed = NodeConfig.safeParse(value);
  if (!parsed.success) {
    throw new ProtocolError('SCHEMA_INVALID', 'Invalid node configuration', {
      issues: parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  const config = parsed.data;
  const dataDir = resolve(baseDir, config.dataDir ?? '.');
  return {
    ...config,
    dataDir,
    store: config.store ?? `sqlite:${join(dataDir, 'node.db')}`,
    listen: config.listen ?? listenFromId(config.id),
  };
}
