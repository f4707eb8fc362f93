/**
 * Node directories and instances for the benchmarks: real nodes on 127.0.0.1, configured as an
 * operator would for a busy partnership (see `benchConfig`), logging at info level to /dev/null so
 * that the cost of logging is paid without flooding the terminal.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { NodeRole } from '@passerelle/protocol';
import { initNodeDir, readConfigFile, startNode, type NodeConfigInput, type RunningNode } from '../../src/index.js';
import { coSign, freePort, pinEachOther } from '../../test/harness/cluster.js';
import { benchConsent } from './referral.js';

export interface BenchTuning {
  /** Deliveries in flight to one peer (config `outbox.perPeerConcurrency`). */
  perPeerConcurrency: number;
  /** Entries leased per claim (config `outbox.batchSize`). */
  batchSize: number;
  logLevel: NodeConfigInput['logLevel'];
}

/**
 * The configuration both benchmark nodes use: the defaults, except that the receiver lets this
 * partner send far more than the default per-peer rate limit (which is sized for a handful of
 * caseworkers, and would otherwise be what is measured) and the outbox keeps as many deliveries
 * in flight to the peer as the driver keeps messages outstanding.
 */
export function benchConfig(tuning: BenchTuning, store?: string): Partial<NodeConfigInput> {
  return {
    devMode: true,
    logLevel: tuning.logLevel,
    ...(store ? { store } : {}),
    outbox: { perPeerConcurrency: tuning.perPeerConcurrency, batchSize: tuning.batchSize },
    limits: { peerRateLimit: { burst: 100_000, perSecond: 100_000 } },
  };
}

export interface BenchNodeSpec {
  name: string;
  country: string;
  role: NodeRole;
  store?: string;
}

export interface PreparedDir {
  dir: string;
  id: string;
  port: number;
}

export class BenchWorkspace {
  readonly #dirs: string[] = [];
  readonly #instances: RunningNode[] = [];

  async prepare(spec: BenchNodeSpec, tuning: BenchTuning): Promise<PreparedDir> {
    const dir = await mkdtemp(join(tmpdir(), 'passerelle-bench-'));
    this.#dirs.push(dir);
    const port = await freePort();
    const id = `http://127.0.0.1:${port}`;
    await initNodeDir({ dir, url: id, name: spec.name, country: spec.country, roles: [spec.role], languages: ['fr', 'en'], config: benchConfig(tuning, spec.store) });
    return { dir, id, port };
  }

  /**
   * Starts an instance of the node in `dir`; with `listenPort`, on that port instead of its id's
   * (a second instance behind a load balancer, which then owns the id's port).
   */
  async start(dir: string, listenPort?: number): Promise<RunningNode> {
    const config = await readConfigFile(dir);
    const destination = pino.destination({ dest: '/dev/null', sync: false });
    const node = await startNode({
      config: listenPort === undefined ? config : { ...config, listen: { host: '127.0.0.1', port: listenPort } },
      logDestination: destination,
    });
    this.#instances.push(node);
    return node;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#instances.map((n) => n.close()));
    this.#instances.length = 0;
    await Promise.allSettled(this.#dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Pins both ways, co-signs the agreement and records the person's consent on the sender. */
export async function connect(sender: RunningNode, receiver: RunningNode): Promise<{ agreementId: string; consentId: string }> {
  await pinEachOther(sender, receiver);
  const agreementId = await coSign(sender, receiver);
  const consent = await sender.recordConsent(benchConsent(receiver.id));
  return { agreementId, consentId: consent.id };
}
