/** Token buckets keyed by caller (a peer's node id, a local API token): burst, then a steady rate. */

export interface BucketOptions {
  burst: number;
  perSecond: number;
  now?: () => number;
  /** Keys kept before the least recently used are dropped (bounds memory). */
  maxKeys?: number;
}

export type TakeResult = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export class TokenBuckets {
  readonly #options: BucketOptions;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: BucketOptions) {
    this.#options = options;
  }

  take(key: string): TakeResult {
    return this.#check(key, true);
  }

  /** Whether `take` would allow a request now, without using a token. */
  peek(key: string): TakeResult {
    return this.#check(key, false);
  }

  #check(key: string, consume: boolean): TakeResult {
    const now = this.#options.now?.() ?? Date.now();
    const { burst, perSecond } = this.#options;
    const b = this.#buckets.get(key) ?? { tokens: burst, at: now };
    this.#buckets.delete(key);
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.#buckets.set(key, b);
    if (this.#buckets.size > (this.#options.maxKeys ?? 10_000)) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    if (b.tokens >= 1) {
      if (consume) b.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / perSecond)) };
  }
}
