import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from '../src/outbox/circuit-breaker.js';

describe('per-peer circuit breaker', () => {
  it('opens after consecutive failures, half-opens after the cooldown, closes on success', () => {
    let t = 0;
    const b = new CircuitBreakers({ threshold: 3, cooldownMs: 1000, maxCooldownMs: 8000, now: () => t });
    const peer = 'https://partner.example';
    for (let i = 0; i < 2; i++) {
      expect(b.tryAcquire(peer)).toBe(true);
      b.onFailure(peer);
    }
    expect(b.state(peer)).toBe('closed');
    b.onFailure(peer);
    expect(b.state(peer)).toBe('open');
    expect(b.tryAcquire(peer)).toBe(false);
    expect(b.retryAt(peer)).toBe(1000);
    t = 1000;
    expect(b.state(peer)).toBe('half-open');
    expect(b.tryAcquire(peer)).toBe(true);
    // One trial at a time.
    expect(b.tryAcquire(peer)).toBe(false);
    b.onSuccess(peer);
    expect(b.state(peer)).toBe('closed');
    expect(b.tryAcquire(peer)).toBe(true);
  });

  it('doubles the cooldown when a trial fails, up to the cap; peers are independent', () => {
    let t = 0;
    const b = new CircuitBreakers({ threshold: 1, cooldownMs: 1000, maxCooldownMs: 3000, now: () => t });
    b.onFailure('a');
    t = 1000;
    expect(b.tryAcquire('a')).toBe(true);
    b.onFailure('a');
    expect(b.retryAt('a')).toBe(3000);
    t = 3000;
    b.tryAcquire('a');
    b.onFailure('a');
    expect(b.retryAt('a')).toBe(6000);
    expect(b.state('b')).toBe('closed');
    expect(b.snapshot()).toEqual([{ peer: 'a', state: 'open' }]);
  });

  it('gives a trial slot back on release', () => {
    let t = 0;
    const b = new CircuitBreakers({ threshold: 1, cooldownMs: 10, maxCooldownMs: 10, now: () => t });
    b.onFailure('a');
    t = 10;
    expect(b.tryAcquire('a')).toBe(true);
    b.release('a');
    expect(b.tryAcquire('a')).toBe(true);
  });
});
