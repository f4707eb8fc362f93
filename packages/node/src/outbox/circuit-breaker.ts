/**
 * One circuit breaker per peer. Closed: deliveries go out. After `threshold` consecutive
 * transport failures it opens: nothing is sent to that peer until the cooldown passes. Then it is
 * half-open: one trial delivery; success closes it, failure opens it again for twice as long
 * (capped), so a peer that is down for a day is not hammered and one that comes back is found.
 */

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  threshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
  now?: () => number;
}

interface PeerCircuit {
  failures: number;
  openedAt?: number;
  cooldownMs: number;
  trialInFlight: boolean;
}

export class CircuitBreakers {
  readonly #options: BreakerOptions;
  readonly #circuits = new Map<string, PeerCircuit>();

  constructor(options: BreakerOptions) {
    this.#options = options;
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  #get(peer: string): PeerCircuit {
    let c = this.#circuits.get(peer);
    if (!c) {
      c = { failures: 0, cooldownMs: this.#options.cooldownMs, trialInFlight: false };
      this.#circuits.set(peer, c);
    }
    return c;
  }

  state(peer: string): CircuitState {
    const c = this.#circuits.get(peer);
    if (!c || c.openedAt === undefined) return 'closed';
    return this.#now() - c.openedAt >= c.cooldownMs ? 'half-open' : 'open';
  }

  /** Whether a delivery to `peer` may start now; in half-open only one trial at a time. */
  tryAcquire(peer: string): boolean {
    const state = this.state(peer);
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const c = this.#get(peer);
    if (c.trialInFlight) return false;
    c.trialInFlight = true;
    return true;
  }

  /** When an open circuit will let a trial through (ms since epoch); now when closed. */
  retryAt(peer: string): number {
    const c = this.#circuits.get(peer);
    if (!c || c.openedAt === undefined) return this.#now();
    return c.openedAt + c.cooldownMs;
  }

  /** The peer answered (any protocol answer, including a rejection): the transport works. */
  onSuccess(peer: string): void {
    const c = this.#get(peer);
    c.failures = 0;
    c.trialInFlight = false;
    delete c.openedAt;
    c.cooldownMs = this.#options.cooldownMs;
  }

  onFailure(peer: string): void {
    const c = this.#get(peer);
    const wasTrial = c.openedAt !== undefined;
    c.trialInFlight = false;
    c.failures += 1;
    if (wasTrial) {
      c.cooldownMs = Math.min(c.cooldownMs * 2, this.#options.maxCooldownMs);
      c.openedAt = this.#now();
    } else if (c.failures >= this.#options.threshold) {
      c.openedAt = this.#now();
    }
  }

  /** Releases a half-open trial slot without a verdict (the attempt did not happen). */
  release(peer: string): void {
    const c = this.#circuits.get(peer);
    if (c) c.trialInFlight = false;
  }

  snapshot(): { peer: string; state: CircuitState }[] {
    return [...this.#circuits.keys()].map((peer) => ({ peer, state: this.state(peer) }));
  }
}
