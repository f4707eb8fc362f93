/**
 * Retry delays: exponential backoff with full jitter (a random delay between zero and the
 * exponential bound), so that many nodes retrying after an outage do not arrive together.
 */

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

/** Delay before attempt `attempt + 1`, given `attempt` failed attempts so far (>= 1). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const bound = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  return Math.floor(random() * bound);
}

/**
 * Reads Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date. Returns milliseconds, or
 * undefined when absent or unreadable. Capped so a peer cannot park a message for ever.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number, capMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  let ms: number | undefined;
  if (/^\d{1,10}$/.test(text)) ms = Number(text) * 1000;
  else if (/^[A-Za-z]{3},? /.test(text)) {
    // HTTP-date (RFC 9110 §5.6.7): a day name first, so that stray numbers are never read as years.
    const at = Date.parse(text);
    if (!Number.isNaN(at)) ms = Math.max(0, at - now);
  }
  return ms === undefined ? undefined : Math.min(ms, capMs);
}
