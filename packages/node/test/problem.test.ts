import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ProtocolError } from '@passerelle/protocol';
import { asProtocolError, problemFrom, readProblem } from '../src/http/problem.js';

describe('problem+json (RFC 9457)', () => {
  it('carries the stable code, its title and the status of spec/errors.md', () => {
    const p = problemFrom(new ProtocolError('CONSENT_WITHDRAWN'));
    expect(p).toEqual({ type: 'urn:passerelle:error:CONSENT_WITHDRAWN', title: ERROR_CODES.CONSENT_WITHDRAWN, status: 403, code: 'CONSENT_WITHDRAWN' });
    expect(problemFrom(new ProtocolError('DUPLICATE_CONFLICT')).status).toBe(409);
    expect(problemFrom(new ProtocolError('RATE_LIMITED')).status).toBe(429);
  });

  it('includes the server time on CLOCK_SKEW and only safe details', () => {
    const p = problemFrom(new ProtocolError('CLOCK_SKEW', 'off', { serverTime: '2026-05-01T10:00:00Z', kid: 'internal', subject: 'x' }));
    expect(p.serverTime).toBe('2026-05-01T10:00:00Z');
    expect(p.detail).toBe('off');
    expect(p).not.toHaveProperty('kid');
    expect(p).not.toHaveProperty('subject');
  });

  it('hides unexpected errors behind INTERNAL', () => {
    const e = asProtocolError(new Error('database at /srv/secret/path exploded'));
    expect(e.code).toBe('INTERNAL');
    expect(JSON.stringify(problemFrom(e))).not.toContain('/srv/secret');
  });

  it('reads a peer problem only when it names a known code', () => {
    expect(readProblem({ code: 'EXPIRED', status: 422 })?.code).toBe('EXPIRED');
    expect(readProblem({ code: 'NOPE', status: 422 })).toBeUndefined();
    expect(readProblem('EXPIRED')).toBeUndefined();
    expect(readProblem([{ code: 'EXPIRED' }])).toBeUndefined();
  });
});
