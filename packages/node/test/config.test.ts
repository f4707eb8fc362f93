import { describe, expect, it } from 'vitest';
import { listenFromId, parseConfig } from '../src/config.js';

const base = { id: 'https://node.agency.example', name: 'Agence Exemple', country: 'BE', roles: ['ngo'], languages: ['fr'] };

describe('node configuration', () => {
  it('fills every limit with an explicit default and derives store and listen address', () => {
    const c = parseConfig(base, '/srv/passerelle');
    expect(c.dataDir).toBe('/srv/passerelle');
    expect(c.store).toBe('sqlite:/srv/passerelle/node.db');
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 443 });
    expect(c.limits.requestTimeoutMs).toBeGreaterThan(0);
    expect(c.limits.connectionTimeoutMs).toBeGreaterThan(0);
    expect(c.limits.headersTimeoutMs).toBeGreaterThan(0);
    expect(c.limits.inboxBodyLimit).toBeGreaterThan(2 * 1024 * 1024);
    expect(c.outbox.backoffCapMs).toBeGreaterThanOrEqual(c.outbox.backoffBaseMs);
    expect(c.devMode).toBe(false);
  });

  it('listens on the loopback address and port of a loopback id', () => {
    expect(listenFromId('http://127.0.0.1:8443')).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(listenFromId('http://[::1]:9000')).toEqual({ host: '::1', port: 9000 });
  });

  it('keeps nested defaults when only some fields are given', () => {
    const c = parseConfig({ ...base, outbox: { pollIntervalMs: 50 } }, '/x');
    expect(c.outbox.pollIntervalMs).toBe(50);
    expect(c.outbox.maxAttempts).toBe(50);
  });

  it('refuses unknown fields, bad ids, fault injection outside devMode and an inverted backoff', () => {
    expect(() => parseConfig({ ...base, colour: 'blue' }, '/x')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
    expect(() => parseConfig({ ...base, id: 'http://node.agency.example' }, '/x')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
    expect(() => parseConfig({ ...base, faults: { delayAfterCommitMs: 10 } }, '/x')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
    expect(() => parseConfig({ ...base, devMode: true, faults: { delayAfterCommitMs: 10 } }, '/x')).not.toThrow();
    expect(() => parseConfig({ ...base, outbox: { backoffBaseMs: 5000, backoffCapMs: 100 } }, '/x')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
    expect(() => parseConfig({ ...base, store: 'mysql://db' }, '/x')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
  });
});
