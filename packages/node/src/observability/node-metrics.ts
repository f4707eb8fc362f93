/** The node's metrics (spec/node.md §6). Labels are states, outcomes, codes and peer node ids only. */
import type { Store } from '../store/types.js';
import type { CircuitBreakers, CircuitState } from '../outbox/circuit-breaker.js';
import { Counter, Gauge, Histogram, Registry } from './metrics.js';

const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface NodeMetrics {
  registry: Registry;
  deliveries: Counter;
  deliveryDuration: Histogram;
  queueLatency: Histogram;
  inbox: Counter;
  webhooks: Counter;
}

export function createNodeMetrics(store: Store, breakers: CircuitBreakers): NodeMetrics {
  const registry = new Registry();
  registry.register(
    new Gauge('passerelle_outbox_messages', 'Outbox messages by state.', async () =>
      Object.entries(await store.countOutboxByState()).map(([state, n]) => [{ state }, n]),
    ),
  );
  registry.register(
    new Gauge('passerelle_peer_circuit_state', 'Circuit breaker per peer: 0 closed, 1 half-open, 2 open.', () =>
      breakers.snapshot().map(({ peer, state }) => [{ peer, state }, CIRCUIT_VALUE[state]]),
    ),
  );
  return {
    registry,
    deliveries: registry.register(new Counter('passerelle_deliveries_total', 'Delivery attempts by outcome (delivered, rejected, retry, failed, cancelled).')),
    deliveryDuration: registry.register(
      new Histogram('passerelle_delivery_duration_seconds', 'Duration of one delivery attempt (request to answer).', [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
    ),
    queueLatency: registry.register(
      new Histogram('passerelle_delivery_latency_seconds', 'Time from queueing to delivery of a message.', [0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400]),
    ),
    inbox: registry.register(new Counter('passerelle_inbox_total', 'Inbound messages by result (accepted, duplicate, rejected) and code.')),
    webhooks: registry.register(new Counter('passerelle_webhook_deliveries_total', 'Webhook notifications by outcome.')),
  };
}
