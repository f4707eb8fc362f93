/**
 * `passerelle audit export | verify` (spec/audit.md). Export asks the node for a signed bundle of
 * what it sent and received in a scope; verify checks one offline, with nothing but the bundle,
 * and exits 0 only when every check passes.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import * as nodeApi from '@passerelle/node';
import * as protocol from '@passerelle/protocol';
import { isNodeId, parseJson, ProtocolError, Timestamp, Uuid } from '@passerelle/protocol';
import { DIR_OPTION, flag, nodeDir, reqStr, str, type Command, type CommandContext } from '../command.js';
import { printJson, println, UsageError, EXIT_FAILURE, EXIT_OK, type OutputStream } from '../io.js';
import { requireFile, withOfflineNode } from '../node-dir.js';

/** A bundle larger than this gets a progress bar even when stderr is not a terminal. */
const LARGE_BUNDLE_BYTES = 8 * 1024 * 1024;
const MAX_BUNDLE_BYTES = 2 * 1024 * 1024 * 1024;

export type BundleScopeInput =
  | { kind: 'all' }
  | { kind: 'range'; from: string; to: string }
  | { kind: 'thread'; threadId: string }
  | { kind: 'consent'; consentId: string }
  | { kind: 'peer'; peer: string };

export interface AuditExportOptions {
  scope: BundleScopeInput;
  personalData: 'none' | 'lawful-full-audit';
}

export interface VerifyProgress {
  done: number;
  total: number;
  phase?: string;
}

/** The verifier's report, as spec/audit.md §6 describes it (report.ts in the protocol package). */
export interface AuditReportLike {
  ok: boolean;
  failures: { object: string; check: string; code: string; message: string }[];
  [key: string]: unknown;
}

type VerifyBundleFn = (bundle: unknown, options?: { now?: Date; onProgress?: (done: number, total: number) => void }) => Promise<AuditReportLike>;
type FormatReportFn = (report: AuditReportLike) => string;
type ExportFn = (options: AuditExportOptions) => Promise<unknown>;

/** The offline verifier and its report formatter (packages/protocol/src/audit). */
export function bundleVerifier(): { verifyBundle: VerifyBundleFn; formatReport: FormatReportFn } {
  return {
    verifyBundle: protocol.verifyBundle as unknown as VerifyBundleFn,
    formatReport: protocol.formatReport as unknown as FormatReportFn,
  };
}

/** The node's bundle exporter. */
export function bundleExporter(node: nodeApi.RunningNode): ExportFn {
  return (options) => node.exportAuditBundle(options);
}

function scopeFrom(ctx: CommandContext): BundleScopeInput {
  const thread = str(ctx, 'thread');
  const consent = str(ctx, 'consent');
  const peer = str(ctx, 'peer');
  const from = str(ctx, 'from');
  const to = str(ctx, 'to');
  const chosen = [thread, consent, peer, from ?? to].filter((v) => v !== undefined);
  if (chosen.length > 1) throw new UsageError('choose one scope: --thread, --consent, --peer, or --from and --to', 'audit export');
  if (thread !== undefined) {
    if (!Uuid.safeParse(thread).success) throw new UsageError(`--thread must be a UUID: ${thread}`, 'audit export', 'SCHEMA_INVALID');
    return { kind: 'thread', threadId: thread };
  }
  if (consent !== undefined) {
    if (!Uuid.safeParse(consent).success) throw new UsageError(`--consent must be a UUID: ${consent}`, 'audit export', 'SCHEMA_INVALID');
    return { kind: 'consent', consentId: consent };
  }
  if (peer !== undefined) {
    if (!isNodeId(peer)) throw new UsageError(`--peer must be a node id: ${peer}`, 'audit export', 'SCHEMA_INVALID');
    return { kind: 'peer', peer };
  }
  if (from !== undefined || to !== undefined) {
    if (from === undefined || to === undefined) throw new UsageError('--from and --to go together', 'audit export');
    for (const [name, v] of [['from', from], ['to', to]] as const) {
      if (!Timestamp.safeParse(v).success) throw new UsageError(`--${name} must be an RFC 3339 UTC timestamp such as 2026-05-01T00:00:00Z`, 'audit export', 'SCHEMA_INVALID');
    }
    if (Date.parse(to) <= Date.parse(from)) throw new UsageError('--to must be after --from', 'audit export', 'SCHEMA_INVALID');
    return { kind: 'range', from, to };
  }
  return { kind: 'all' };
}

const exportCommand: Command = {
  path: ['audit', 'export'],
  summary: 'Export a signed audit bundle: messages, receipts, consents, agreements, key history and log proofs.',
  details: [
    'By default the bundle carries no personal data (salted digests stand in for every personal field),',
    'so an auditor can check signatures, routing, consent and categories without seeing the data.',
    '--with-disclosures adds the disclosures, for an audit with a legal basis to see them.',
    'Scope: the whole log by default, or one of --thread, --consent, --peer, --from/--to.',
  ].join('\n'),
  options: {
    dir: DIR_OPTION,
    thread: { type: 'string', placeholder: 'ID', description: 'Only this thread' },
    consent: { type: 'string', placeholder: 'ID', description: 'Only messages under this consent' },
    peer: { type: 'string', placeholder: 'NODE_ID', description: 'Only exchanges with this peer' },
    from: { type: 'string', placeholder: 'T', description: 'Messages created from T (RFC 3339, with --to)' },
    to: { type: 'string', placeholder: 'T', description: 'Messages created before T (RFC 3339, with --from)' },
    'with-disclosures': { type: 'boolean', description: 'Include personal data (lawful full audit only)' },
    out: { type: 'string', placeholder: 'FILE', description: 'Where to write the bundle (mode 0600)', required: true },
  },
  async run(ctx) {
    const dir = nodeDir(ctx, 'audit export');
    const scope = scopeFrom(ctx);
    const out = ctx.path(reqStr(ctx, 'out', 'audit export'));
    const personalData = flag(ctx, 'with-disclosures') ? 'lawful-full-audit' : 'none';
    const bundle = await withOfflineNode(dir, (node) => bundleExporter(node)({ scope, personalData }));
    // 'wx' would refuse to refresh an export; 0600 because a lawful full audit holds personal data.
    await writeFile(out, `${JSON.stringify(bundle)}\n`, { mode: 0o600 });
    const counts = (bundle as { counts?: unknown; attestation?: unknown }).counts;
    println(ctx.io.stdout, `Wrote audit bundle ${out}${personalData === 'none' ? ' (no personal data)' : ' (WITH personal data: handle as such)'}`);
    if (counts) println(ctx.io.stdout, `  ${JSON.stringify(counts)}`);
    println(ctx.io.stdout, `Verify it offline with: passerelle audit verify ${out}`);
  },
};

/** Draws `[#####.....] 45% phase` on a terminal, or a line per 10% elsewhere. */
export function progressReporter(stream: OutputStream, enabled: boolean): { update(p: VerifyProgress): void; done(): void } {
  if (!enabled) return { update: () => {}, done: () => {} };
  const tty = stream.isTTY === true;
  let lastDecile = -1;
  let drawn = false;
  return {
    update(p) {
      const ratio = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
      const pct = Math.floor(ratio * 100);
      if (tty) {
        const width = 30;
        const filled = Math.round(ratio * width);
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${p.phase ?? ''}`.padEnd(60));
        drawn = true;
      } else if (Math.floor(pct / 10) > lastDecile) {
        lastDecile = Math.floor(pct / 10);
        stream.write(`verifying: ${pct}%${p.phase ? ` (${p.phase})` : ''}\n`);
      }
    },
    done() {
      if (tty && drawn) stream.write(`\r${' '.repeat(60)}\r`);
    },
  };
}

/** Verifies a bundle file; resolves to the report (tests and the demo use this directly). */
export async function verifyBundleFile(file: string, progress?: (p: VerifyProgress) => void): Promise<AuditReportLike> {
  const verifier = bundleVerifier();
  const size = (await stat(file)).size;
  if (size > MAX_BUNDLE_BYTES) throw new ProtocolError('TOO_LARGE', 'Bundle file too large');
  let bundle: unknown;
  try {
    bundle = parseJson(new TextDecoder('utf-8', { fatal: true }).decode(await readFile(file)));
  } catch (e) {
    if (e instanceof ProtocolError) throw new ProtocolError(e.code, `${file} is not a JSON audit bundle: ${e.message}`);
    throw new ProtocolError('MALFORMED', `${file} is not UTF-8 JSON`);
  }
  return verifier.verifyBundle(bundle, progress ? { onProgress: (done, total) => progress({ done, total }) } : {});
}

export function formatAuditReport(report: AuditReportLike): string {
  return bundleVerifier().formatReport(report);
}

const verifyCommand: Command = {
  path: ['audit', 'verify'],
  summary: 'Verify an audit bundle offline and print a report naming each failure; exit 0 only when everything verifies.',
  details: [
    'Checks every signature against the key history the bundle carries, receipts against their',
    'messages, consent and agreement decisions, and the audit log\'s Merkle proofs and checkpoints.',
    'No network access and no trust in the exporter. A progress bar is drawn on stderr when it is a',
    'terminal or the bundle is large.',
  ].join('\n'),
  args: '<bundle>',
  positionals: { min: 1, max: 1 },
  options: { json: { type: 'boolean', description: 'Print the report as JSON' } },
  async run(ctx) {
    const file = ctx.path(ctx.positionals[0]!);
    await requireFile(file, 'Bundle');
    const size = (await stat(file)).size;
    const progress = progressReporter(ctx.io.stderr, ctx.io.stderr.isTTY === true || size > LARGE_BUNDLE_BYTES);
    let report: AuditReportLike;
    try {
      report = await verifyBundleFile(file, (p) => progress.update(p));
    } finally {
      progress.done();
    }
    if (flag(ctx, 'json')) printJson(ctx.io.stdout, report);
    else ctx.io.stdout.write(formatAuditReport(report));
    return report.ok ? EXIT_OK : EXIT_FAILURE;
  },
};

export const auditCommands: Command[] = [exportCommand, verifyCommand];
