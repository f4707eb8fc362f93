import { describe, expect, it } from 'vitest';
import { backoffDelay, parseRetryAfter } from '../src/outbox/backoff.js';

describe('backoff with full jitter', () => {
  const policy = { baseMs: 100, capMs: 5000 };

  it('draws between zero and base·2^(attempt-1), capped', () => {
    expect(backoffDelay(policy, 1, () => 0.999)).toBe(99);
    expect(backoffDelay(policy, 3, () => 0.999)).toBe(399);
    expect(backoffDelay(policy, 30, () => 0.999)).toBe(4995);
    expect(backoffDelay(policy, 5, () => 0)).toBe(0);
  });

  it('spreads retries rather than synchronising them', () => {
    const draws = new Set(Array.from({ length: 50 }, () => backoffDelay(policy, 6)));
    expect(draws.size).toBeGreaterThan(10);
    for (const d of draws) expect(d).toBeLessThan(3200);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-05-01T10:00:00Z');
  it('reads delay-seconds and HTTP dates, capped', () => {
    expect(parseRetryAfter('7', now, 60_000)).toBe(7000);
    expect(parseRetryAfter('Fri, 01 May 2026 10:00:30 GMT', now, 60_000)).toBe(30_000);
    expect(parseRetryAfter('99999', now, 60_000)).toBe(60_000);
    expect(parseRetryAfter('Fri, 01 May 2026 09:00:00 GMT', now, 60_000)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined, now, 1000)).toBeUndefined();
    expect(parseRetryAfter('soon', now, 1000)).toBeUndefined();
    expect(parseRetryAfter('-5', now, 1000)).toBeUndefined();
  });
});
