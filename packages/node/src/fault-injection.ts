/**
 * Crash points for tests only (spec/node.md §4.5): with `PASSERELLE_FAULT=<point>:<n>` in its
 * environment, the process kills itself with SIGKILL the n-th time it reaches `<point>`. That is
 * how crash tests hit the narrow windows between a commit and the answer that acknowledges it,
 * which timing alone reaches only by luck. Without the variable every call is a no-op.
 *
 * This is the one place the node reads `process.env` by itself: an embedding program cannot switch
 * it on by accident through its configuration, and no deployment has a reason to set it.
 */

export const FAULT_ENV_VAR = 'PASSERELLE_FAULT';

export const FAULT_POINTS = [
  /** The sender committed a message to its outbox; the local API has not answered yet. */
  'outbox.committed',
  /** The peer accepted a delivery with a valid receipt; the outbox has not recorded it yet. */
  'outbox.sent',
  /** The receiver signed the receipt inside its store transaction, before the commit. */
  'inbox.receipt-signed',
  /** The receiver committed a message and its receipt, before answering. */
  'inbox.stored',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

function parse(value: string | undefined): { point: FaultPoint; n: number } | undefined {
  const match = /^([a-z.-]+):(\d{1,6})$/.exec(value?.trim() ?? '');
  if (!match || !(FAULT_POINTS as readonly string[]).includes(match[1]!) || Number(match[2]) < 1) return undefined;
  return { point: match[1] as FaultPoint, n: Number(match[2]) };
}

const armed = parse(process.env[FAULT_ENV_VAR]);
let reached = 0;

export function crashPoint(point: FaultPoint): void {
  if (armed === undefined || armed.point !== point) return;
  reached += 1;
  if (reached === armed.n) process.kill(process.pid, 'SIGKILL');
}
