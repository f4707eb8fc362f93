/**
 * Remembers signature verifications of consent records, agreements and terminations, which the
 * node repeats for every message (at sending, before every delivery attempt, on receipt) although
 * the signed bytes do not change.
 *
 * A verification is a pure function of the exact signed text and of the keys the resolver gives
 * for it. So an entry keeps the text, the result and every key lookup made while verifying; it is
 * reused only for the same text and only if each of those lookups, asked again (in memory, no
 * network), still gives the same key. A rotation, a revocation or a key that is no longer valid at
 * the signing time therefore makes the entry miss and the text be verified afresh. Time-dependent
 * rules (validity periods, terminations, withdrawals, expiry) are not remembered: callers apply
 * them at every use. Failures are never remembered.
 */
import type { NodeKeyResolver, PublicSigningJwk } from '@passerelle/protocol';

interface Lookup {
  nodeId: string;
  kid: string;
  at: number;
  key: string | undefined;
}

interface Entry<T> {
  value: T;
  lookups: Lookup[];
}

/** Enough for every agreement and every consent in active use on a busy node; older ones are verified again. */
const DEFAULT_CAPACITY = 2048;

function keyText(jwk: PublicSigningJwk | undefined): string | undefined {
  return jwk === undefined ? undefined : `${jwk.kty}:${jwk.crv}:${jwk.x}`;
}

export class VerificationMemo {
  readonly #entries = new Map<string, Entry<unknown>>();
  readonly #capacity: number;

  constructor(capacity = DEFAULT_CAPACITY) {
    this.#capacity = capacity;
  }

  /**
   * The result of `verify(resolver)` for the signed text `signed` (prefixed by `kind` so that one
   * text read as two kinds of object stays two entries).
   */
  async get<T>(kind: string, signed: string, resolve: NodeKeyResolver, verify: (resolve: NodeKeyResolver) => Promise<T>): Promise<T> {
    const id = `${kind}\n${signed}`;
    const entry = this.#entries.get(id) as Entry<T> | undefined;
    if (entry && (await this.#stillSame(entry.lookups, resolve))) return entry.value;
    const lookups: Lookup[] = [];
    const recording: NodeKeyResolver = async (nodeId, kid, at) => {
      const jwk = await resolve(nodeId, kid, at);
      lookups.push({ nodeId, kid, at: at.getTime(), key: keyText(jwk) });
      return jwk;
    };
    const value = await verify(recording);
    this.#entries.delete(id);
    this.#entries.set(id, { value, lookups });
    if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
    return value;
  }

  async #stillSame(lookups: readonly Lookup[], resolve: NodeKeyResolver): Promise<boolean> {
    for (const l of lookups) {
      if (keyText(await resolve(l.nodeId, l.kid, new Date(l.at))) !== l.key) return false;
    }
    return true;
  }
}
