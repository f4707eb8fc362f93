import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../src/http/token-bucket.js';

describe('token buckets', () => {
  it('allows a burst, then the steady rate, per key', () => {
    let t = 0;
    const b = new TokenBuckets({ burst: 3, perSecond: 2, now: () => t });
    expect([b.take('a'), b.take('a'), b.take('a')].every((r) => r.allowed)).toBe(true);
    expect(b.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(b.take('b').allowed).toBe(true);
    t = 500;
    expect(b.take('a').allowed).toBe(true);
    expect(b.take('a').allowed).toBe(false);
    t = 10_000;
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')].map((r) => r.allowed)).toEqual([true, true, true, false]);
  });

  it('bounds the number of keys it remembers', () => {
    const b = new TokenBuckets({ burst: 1, perSecond: 0.001, maxKeys: 2, now: () => 0 });
    b.take('a');
    b.take('b');
    b.take('c');
    // 'a' was forgotten, so it starts with a full bucket again.
    expect(b.take('a').allowed).toBe(true);
    expect(b.take('c').allowed).toBe(false);
  });
});
