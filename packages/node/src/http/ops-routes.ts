/** Liveness, readiness and metrics (spec/node.md §6). None of them returns personal data. */
import type { FastifyInstance } from 'fastify';
import { ProtocolError } from '@passerelle/protocol';
import { PROMETHEUS_CONTENT_TYPE, type Registry } from '../observability/metrics.js';
import type { Store } from '../store/types.js';
import { sendProblem } from './server.js';

export interface OpsRouteDeps {
  store: Store;
  registry: Registry;
  workerHealthy: () => boolean;
  now: () => Date;
}

export function registerOpsRoutes(app: FastifyInstance, deps: OpsRouteDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks = { store: false, worker: deps.workerHealthy() };
    try {
      // A write that expires at once: proves the store accepts commits, leaves nothing behind.
      const at = deps.now();
      await deps.store.remember(`readyz:${at.getTime()}:${Math.random()}`, new Date(at.getTime() + 1000).toISOString());
      checks.store = true;
    } catch {
      checks.store = false;
    }
    if (!checks.store || !checks.worker) {
      return sendProblem(reply, new ProtocolError('STORE_UNAVAILABLE', checks.store ? 'The outbox worker is not running' : 'The store is not writable'));
    }
    return { status: 'ready', checks };
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.header('content-type', PROMETHEUS_CONTENT_TYPE).send(await deps.registry.render());
  });
}
