/**
 * The node's HTTP edge: every ProtocolError becomes an RFC 9457 problem+json document with the
 * stable code. Nothing below this layer knows about HTTP statuses.
 */
import { ERROR_CODES, httpStatusOf, isErrorCode, ProtocolError, type ErrorCode } from '@passerelle/protocol';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_PREFIX = 'urn:passerelle:error:';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  /** CLOCK_SKEW: our clock, so the peer can see by how much it is off. */
  serverTime?: string;
  /** A signed rejection receipt, when the sender was authenticated and the message id is known. */
  receipt?: string;
  [extension: string]: unknown;
}

/** One table for every edge (spec/errors.md), kept in the protocol package. */
export function statusOf(code: ErrorCode): number {
  return httpStatusOf(code);
}

/** Details worth showing a caller; anything else stays in our logs. */
const SAFE_DETAIL_KEYS = new Set(['serverTime', 'issues', 'path', 'reason', 'missing', 'categories', 'purpose', 'recipient', 'at', 'state', 'expiresAt']);

export function problemFrom(error: ProtocolError, options: { status?: number; receipt?: string } = {}): Problem {
  const problem: Problem = {
    type: `${PROBLEM_TYPE_PREFIX}${error.code}`,
    title: ERROR_CODES[error.code],
    status: options.status ?? statusOf(error.code),
    code: error.code,
  };
  if (error.message && error.message !== ERROR_CODES[error.code]) problem.detail = error.message;
  for (const [key, value] of Object.entries(error.details ?? {})) {
    if (SAFE_DETAIL_KEYS.has(key)) problem[key] = value;
  }
  if (options.receipt) problem.receipt = options.receipt;
  return problem;
}

/** Any thrown value as a ProtocolError (unexpected ones become INTERNAL, their message hidden). */
export function asProtocolError(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  return new ProtocolError('INTERNAL', undefined, undefined, { cause: error });
}

/** Reads a problem document a peer sent; undefined when it is not one with a known code. */
export function readProblem(value: unknown): Problem | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const p = value as Record<string, unknown>;
  if (!isErrorCode(p.code) || typeof p.status !== 'number') return undefined;
  return p as Problem;
}
