import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { contextFromPayloads, evaluateFlow, type FlowDecision, type FlowFacts, type FlowPayloads } from '../src/enforcement.js';
import { isProtocolError, type ErrorCode } from '../src/errors.js';

interface DecisionVector {
  comment: string;
  tags: string[];
  input: FlowPayloads & { facts: FlowFacts; agreementSignedBy?: string[] };
  expected: { allowed: true } | { allowed: false; code: ErrorCode };
}

const file = JSON.parse(readFileSync(new URL('../../../spec/vectors/decisions.json', import.meta.url), 'utf8')) as {
  description: string;
  vectors: DecisionVector[];
};

/** What a conforming implementation does with one vector: build the context, then decide. */
function decide(input: DecisionVector['input']): FlowDecision {
  try {
    const { facts, ...payloads } = input;
    return evaluateFlow(facts, contextFromPayloads(payloads));
  } catch (e) {
    if (isProtocolError(e)) return { allowed: false, code: e.code, message: e.message };
    throw e;
  }
}

const DENIAL_CODES: ErrorCode[] = [
  'CONSENT_MISSING',
  'CONSENT_INVALID',
  'CONSENT_SIGNER_INVALID',
  'CONSENT_NOT_YET_VALID',
  'CONSENT_EXPIRED',
  'CONSENT_WITHDRAWN',
  'CONSENT_RECIPIENT_NOT_COVERED',
  'CONSENT_PURPOSE_NOT_COVERED',
  'CONSENT_CATEGORY_NOT_COVERED',
  'CONSENT_SPECIAL_CATEGORY_NOT_EXPLICIT',
  'CONSENT_MINOR_WITHOUT_GUARDIAN',
  'AGREEMENT_MISSING',
  'AGREEMENT_INVALID',
  'AGREEMENT_NOT_IN_FORCE',
  'AGREEMENT_FLOW_NOT_ALLOWED',
  'ONWARD_NOT_ALLOWED',
  'PROVENANCE_INVALID',
];

describe('spec/vectors/decisions.json', () => {
  it('is well-formed and covers one allowed case and every denial code', () => {
    expect(file.vectors.length).toBeGreaterThan(DENIAL_CODES.length);
    for (const v of file.vectors) {
      expect(v.comment.length).toBeGreaterThan(0);
      expect(v.tags.length).toBeGreaterThan(0);
    }
    expect(file.vectors.some((v) => v.expected.allowed)).toBe(true);
    const covered = new Set(file.vectors.flatMap((v) => (v.expected.allowed ? [] : [v.expected.code])));
    expect(DENIAL_CODES.filter((c) => !covered.has(c))).toEqual([]);
    expect([...covered].filter((c) => !DENIAL_CODES.includes(c))).toEqual([]);
  });

  it('has no two vectors with the same comment', () => {
    const comments = file.vectors.map((v) => v.comment);
    expect(new Set(comments).size).toBe(comments.length);
  });

  it.each(file.vectors.map((v) => [v.comment, v] as const))('%s', (_comment, v) => {
    const decision = decide(v.input);
    if (v.expected.allowed) expect(decision).toEqual({ allowed: true });
    else expect(decision).toMatchObject({ allowed: false, code: v.expected.code });
  });
});
