/**
 * `passerelle inspect`: decodes any Passerelle object for a human (or --json) WITHOUT verifying
 * it. Nothing here checks a signature or decrypts: the output says so on its first line, and the
 * JOSE allow-list result is shown only as a diagnostic. Disclosure values (personal data) are never
 * printed; their count and claim names are.
 */
import { readFile } from 'node:fs/promises';
import {
  AGREEMENT_TERMINATION_TYP,
  AGREEMENT_TYP,
  CHECKPOINT_TYP,
  CONSENT_TYP,
  ENVELOPE_TYP,
  messageTypeFromTyp,
  NODE_DOCUMENT_TYP,
  parseCompactJwe,
  parseCompactJws,
  ProtocolError,
  RECEIPT_TYP,
} from '@passerelle/protocol';
import { flag, type Command, type CommandContext } from '../command.js';
import { printJson, println } from '../io.js';
import { requireFile } from '../node-dir.js';

export const UNVERIFIED_BANNER = 'UNVERIFIED: decoded only. No signature was checked and nothing was decrypted.';
const MAX_INPUT_BYTES = 64 * 1024 * 1024;
const TRANSFER_MANIFEST_TYP = 'passerelle-transfer+jwt';

const TYP_LABELS: Record<string, string> = {
  [RECEIPT_TYP]: 'receipt',
  [CONSENT_TYP]: 'consent record',
  [AGREEMENT_TERMINATION_TYP]: 'agreement termination',
  [CHECKPOINT_TYP]: 'audit-log checkpoint',
  [TRANSFER_MANIFEST_TYP]: 'offline transfer manifest',
  [NODE_DOCUMENT_TYP]: 'node document',
  [AGREEMENT_TYP]: 'agreement',
  'passerelle-audit-bundle+jwt': 'audit bundle attestation',
};

/** What inspect found: the same structure is printed as text or as JSON. */
export interface Inspection {
  verified: false;
  kind: string;
  serialization?: string;
  /** The JOSE allow-list check (spec/protocol.md §4.1), a diagnostic and not a verification. */
  josePolicy?: { conforms: true } | { conforms: false; code: string; message: string };
  header?: Record<string, unknown>;
  headers?: Record<string, unknown>[];
  payload?: unknown;
  disclosures?: { count: number; claims: string[] };
  summary?: [string, string][];
  parts?: Inspection[];
  note?: string;
}

function b64uJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw new ProtocolError('MALFORMED', 'A segment is not base64url-encoded JSON');
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function policyOf(check: () => unknown): Inspection['josePolicy'] {
  try {
    check();
    return { conforms: true };
  } catch (e) {
    if (e instanceof ProtocolError) return { conforms: false, code: e.code, message: e.message };
    throw e;
  }
}

function epochToIso(v: unknown): string | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? new Date(v * 1000).toISOString().replace('.000Z', 'Z') : undefined;
}

function joinList(v: unknown): string {
  return Array.isArray(v) ? v.map(String).join(', ') : String(v ?? '');
}

function summaryOf(label: string, p: Record<string, unknown>): [string, string][] {
  const s: [string, string][] = [];
  const put = (k: string, v: unknown) => {
    if (v !== undefined && v !== null && v !== '') s.push([k, typeof v === 'string' ? v : JSON.stringify(v)]);
  };
  if (label === 'receipt') {
    put('receiver (iss)', p.iss);
    put('sender (aud)', p.aud);
    put('message', p.message);
    put('digest', p.digest);
    put('status', `${String(p.status)}${p.code ? ` (${String(p.code)})` : ''}`);
    if (isObject(p.log)) put('audit position', `index ${String(p.log.index)}${p.log.checkpoint ? ', with checkpoint' : ''}`);
    put('at', epochToIso(p.iat));
  } else if (label === 'consent record') {
    put('id', p.id);
    put('controller', p.controller);
    put('purposes', joinList(p.purposes));
    put('recipients', joinList(p.recipients));
    put('categories', joinList(p.categories));
    put('explicit consent', joinList(p.explicitConsent));
    if (isObject(p.collection)) {
      const c = p.collection;
      const interp = isObject(c.interpreter) ? `, ${String(c.interpreter.kind)} (${String(c.interpreter.language)})` : '';
      put('collected', `${String(c.method)} in ${String(c.language)}${interp}`);
      if (isObject(c.text)) put('consent text', `version ${String(c.text.version)}, digest ${String(c.text.digest)}`);
    }
    put('collected at', p.collectedAt);
    put('expires', p.expiresAt);
    if (isObject(p.minor) && p.minor.isMinor) put('minor', 'yes');
  } else if (label.startsWith('message')) {
    put('type', p.type);
    put('id (jti)', p.jti);
    put('from (iss)', p.iss);
    put('to (aud)', p.aud);
    put('thread', p.thread);
    put('agreement', p.agreement);
    put('consent', p.consent);
    put('purpose', p.purpose);
    put('categories', joinList(p.categories));
    put('created', epochToIso(p.iat));
    put('expires', epochToIso(p.exp));
    if (isObject(p.data)) {
      const concealed = Object.entries(p.data).map(([c, v]) => `${c} ${isObject(v) && Array.isArray(v._sd) ? v._sd.length : 0}`);
      put('concealed fields', concealed.join(', ') || 'none');
    }
    put('carries consent record', typeof p.consent_record === 'string' ? 'yes' : undefined);
    put('onward provenance', isObject(p.provenance) ? 'yes' : undefined);
  } else if (label === 'node document') {
    put('id', p.id);
    put('name', p.name);
    put('country', p.country);
    put('roles', joinList(p.roles));
    put('version', p.version);
    put('inbox', p.inbox);
    put('issued', p.issuedAt);
    put('expires', p.expiresAt);
    if (Array.isArray(p.keys)) {
      for (const k of p.keys) if (isObject(k)) put(`key (${String(k.use)})`, `${String(k.kid)}${k.revokedAt ? ` revoked ${String(k.revokedAt)}` : ''}`);
    }
  } else if (label === 'agreement') {
    put('id', p.id);
    put('version', p.version);
    put('title', p.title);
    if (Array.isArray(p.parties)) for (const party of p.parties) if (isObject(party)) put('party', `${String(party.name)} <${String(party.node)}> (${String(party.role)})`);
    put('purposes', joinList(p.purposes));
    if (Array.isArray(p.flows)) {
      for (const f of p.flows) if (isObject(f)) put('flow', `${String(f.from)} -> ${String(f.to)}: ${joinList(f.messageTypes)} [${joinList(f.categories)}]`);
    }
    if (isObject(p.legalBasis)) put('legal basis', `${String(p.legalBasis.basis)}: ${String(p.legalBasis.reference)}`);
    put('valid', `${String(p.validFrom)} to ${String(p.validUntil)}`);
  } else if (label === 'agreement termination') {
    put('agreement', p.agreementId);
    put('by', p.by);
    put('at', p.at);
  } else if (label === 'audit-log checkpoint') {
    put('origin', p.origin);
    put('size', p.size);
    put('root', p.root);
    put('at', p.at);
  } else if (label === 'offline transfer manifest') {
    put('from', p.from);
    put('to', p.to);
    put('created', p.createdAt);
    if (Array.isArray(p.messages)) put('messages', p.messages.length);
  }
  return s;
}

function labelForTyp(typ: unknown): string {
  if (typeof typ !== 'string') return 'JWS (no typ)';
  const type = messageTypeFromTyp(typ);
  if (type) return `message (${type}), issuer-signed part`;
  return TYP_LABELS[typ] ?? `JWS of unknown typ ${typ.slice(0, 64)}`;
}

function inspectCompactJws(token: string): Inspection {
  const parts = token.split('.');
  const header = b64uJson(parts[0] ?? '');
  const payload = b64uJson(parts[1] ?? '');
  if (!isObject(header) || !isObject(payload)) throw new ProtocolError('MALFORMED', 'A JWS header and payload are JSON objects');
  const label = labelForTyp(header.typ);
  const out: Inspection = {
    verified: false,
    kind: label,
    serialization: `compact JWS, ${token.length} bytes`,
    josePolicy: policyOf(() => parseCompactJws(token)),
    header,
    payload,
    summary: summaryOf(label, payload),
  };
  // A message carries its consent record: show what it claims as well.
  if (typeof payload.consent_record === 'string') out.parts = [inspectCompactJws(payload.consent_record)];
  return out;
}

function inspectSdJwt(text: string): Inspection {
  const [jwt, ...rest] = text.split('~');
  const disclosures = rest.filter((d) => d.length > 0);
  const inner = inspectCompactJws(jwt ?? '');
  const claims: string[] = [];
  for (const d of disclosures) {
    const decoded = (() => {
      try {
        return b64uJson(d);
      } catch {
        return undefined;
      }
    })();
    claims.push(Array.isArray(decoded) && typeof decoded[1] === 'string' ? decoded[1] : '(malformed)');
  }
  return {
    ...inner,
    kind: inner.kind.replace(', issuer-signed part', ''),
    serialization: `SD-JWT (issuer-signed JWT and ${disclosures.length} disclosure${disclosures.length === 1 ? '' : 's'}), ${text.length} bytes`,
    disclosures: { count: disclosures.length, claims },
    note: 'Disclosure values are personal data and are not shown; only their claim names.',
  };
}

function inspectJwe(token: string): Inspection {
  const header = b64uJson(token.split('.')[0] ?? '');
  if (!isObject(header)) throw new ProtocolError('MALFORMED', 'A JWE header is a JSON object');
  const sealed = header.typ === ENVELOPE_TYP;
  return {
    verified: false,
    kind: sealed ? 'sealed message' : 'JWE',
    serialization: `compact JWE, ${token.length} bytes`,
    josePolicy: policyOf(() => parseCompactJwe(token)),
    header,
    summary: [
      ['recipient key', String(header.kid ?? '(none)')],
      ['content', `${String(header.cty ?? 'unknown')}, encrypted (only the holder of the recipient key can open it)`],
    ],
  };
}

function inspectGeneralJws(value: Record<string, unknown>): Inspection {
  const signatures = Array.isArray(value.signatures) ? value.signatures : [];
  const headers = signatures.map((s) => (isObject(s) && typeof s.protected === 'string' ? b64uJson(s.protected) : {})).filter(isObject);
  const payload = b64uJson(String(value.payload));
  if (!isObject(payload)) throw new ProtocolError('MALFORMED', 'A JWS payload is a JSON object');
  const label = labelForTyp(headers[0]?.typ);
  const summary = summaryOf(label, payload);
  for (const h of headers) summary.push(['signed by key', String(h.kid ?? '(no kid)')]);
  return { verified: false, kind: label, serialization: `JWS General JSON, ${signatures.length} signature${signatures.length === 1 ? '' : 's'}`, headers, payload, summary };
}

function inspectJsonObject(value: Record<string, unknown>): Inspection {
  if (typeof value.payload === 'string' && Array.isArray(value.signatures)) return inspectGeneralJws(value);
  const format = typeof value.format === 'string' ? value.format : undefined;
  if (format === 'passerelle-transfer/1') {
    const messages = Array.isArray(value.messages) ? value.messages.filter(isObject) : [];
    return {
      verified: false,
      kind: 'offline transfer file',
      serialization: format,
      summary: [['messages', String(messages.length)]],
      parts: [
        ...(typeof value.manifest === 'string' ? [inspectCompactJws(value.manifest)] : []),
        ...messages.map((m) => ({ ...inspectJwe(String(m.jwe)), summary: [['message id', String(m.id)] as [string, string]] })),
      ],
    };
  }
  if (format === 'passerelle-transfer-answer/1') {
    const answers = Array.isArray(value.answers) ? value.answers.filter(isObject) : [];
    return {
      verified: false,
      kind: 'offline transfer answer file',
      serialization: format,
      summary: [
        ['from', String(value.from)],
        ['to', String(value.to)],
        ['created', String(value.createdAt)],
        ['answers', String(answers.length)],
      ],
      parts: answers.filter((a) => typeof a.receipt === 'string').map((a) => inspectCompactJws(String(a.receipt))),
    };
  }
  if (format?.startsWith('passerelle-audit-bundle/')) {
    const summary: [string, string][] = [['format', format]];
    for (const key of ['scope', 'personalData', 'counts']) if (value[key] !== undefined) summary.push([key, JSON.stringify(value[key])]);
    for (const [k, v] of Object.entries(value)) if (Array.isArray(v)) summary.push([`${k} entries`, String(v.length)]);
    return { verified: false, kind: 'audit bundle', serialization: 'JSON', summary, note: 'Verify it with: passerelle audit verify <bundle>' };
  }
  if (value.kty === 'OKP' && typeof value.x === 'string') {
    const isPrivate = typeof value.d === 'string';
    const { d: _d, ...publicPart } = value;
    return {
      verified: false,
      kind: `${isPrivate ? 'private' : 'public'} ${value.crv === 'X25519' ? 'encryption (X25519)' : 'signing (Ed25519)'} JWK`,
      serialization: 'JWK',
      payload: publicPart,
      ...(isPrivate ? { note: 'The private part (d) is not shown.' } : {}),
    };
  }
  throw new ProtocolError('WRONG_TYPE', 'Not a Passerelle object (expected a compact JWS/JWE, an SD-JWT, a General JWS, a transfer file, an audit bundle or a JWK)');
}

export function inspectText(text: string): Inspection {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new ProtocolError('MALFORMED', 'Empty input');
  if (trimmed.startsWith('{') || trimmed.startsWith('"')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw new ProtocolError('MALFORMED', 'The input starts like JSON but does not parse');
    }
    if (typeof value === 'string') return inspectText(value);
    if (!isObject(value)) throw new ProtocolError('WRONG_TYPE', 'Not a Passerelle object');
    return inspectJsonObject(value);
  }
  if (!/^[A-Za-z0-9_\-.~]+$/.test(trimmed)) throw new ProtocolError('MALFORMED', 'Not JSON and not a compact JOSE serialisation');
  if (trimmed.includes('~')) return inspectSdJwt(trimmed);
  const dots = trimmed.split('.').length;
  if (dots === 5) return inspectJwe(trimmed);
  if (dots === 3) return inspectCompactJws(trimmed);
  throw new ProtocolError('MALFORMED', 'A compact JWS has 3 parts and a JWE 5');
}

function renderValue(value: unknown, indent: string, lines: string[]): void {
  if (!isObject(value) && !Array.isArray(value)) return;
  const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value);
  for (const [k, v] of entries) {
    if (isObject(v) || (Array.isArray(v) && v.some((x) => typeof x === 'object' && x !== null))) {
      lines.push(`${indent}${k}:`);
      renderValue(v, `${indent}  `, lines);
    } else if (Array.isArray(v)) {
      lines.push(`${indent}${k}: [${v.map((x) => JSON.stringify(x)).join(', ')}]`);
    } else {
      const s = typeof v === 'string' && v.length > 120 ? `${v.slice(0, 60)}…${v.slice(-20)} (${v.length} chars)` : JSON.stringify(v);
      lines.push(`${indent}${k}: ${s}`);
    }
  }
}

export function renderInspection(i: Inspection, indent = '', lines: string[] = []): string[] {
  lines.push(`${indent}${i.kind}${i.serialization ? `  [${i.serialization}]` : ''}`);
  const inner = `${indent}  `;
  if (i.josePolicy) lines.push(`${inner}JOSE allow-list: ${i.josePolicy.conforms ? 'conforms' : `VIOLATES (${i.josePolicy.code}: ${i.josePolicy.message})`}`);
  if (i.summary && i.summary.length > 0) {
    const width = Math.max(...i.summary.map(([k]) => k.length));
    for (const [k, v] of i.summary) lines.push(`${inner}${k.padEnd(width)}  ${v}`);
  }
  if (i.disclosures) lines.push(`${inner}disclosures: ${i.disclosures.count}${i.disclosures.claims.length ? ` (${i.disclosures.claims.join(', ')})` : ''}`);
  if (i.header) {
    lines.push(`${inner}protected header:`);
    renderValue(i.header, `${inner}  `, lines);
  }
  if (i.payload !== undefined && !i.kind.startsWith('audit bundle')) {
    lines.push(`${inner}payload:`);
    const payload = isObject(i.payload) && typeof i.payload.consent_record === 'string' ? { ...i.payload, consent_record: '(see below)' } : i.payload;
    renderValue(payload, `${inner}  `, lines);
  }
  if (i.note) lines.push(`${inner}note: ${i.note}`);
  for (const part of i.parts ?? []) renderInspection(part, inner, lines);
  return lines;
}

async function readInput(ctx: CommandContext, source: string): Promise<string> {
  if (source === '-') {
    const stdin = ctx.io.stdin ?? process.stdin;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stdin) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
      size += b.length;
      if (size > MAX_INPUT_BYTES) throw new ProtocolError('TOO_LARGE', 'Input too large');
      chunks.push(b);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
  const file = ctx.path(source);
  await requireFile(file);
  const bytes = await readFile(file);
  if (bytes.length > MAX_INPUT_BYTES) throw new ProtocolError('TOO_LARGE', 'Input too large');
  return bytes.toString('utf8');
}

const inspect: Command = {
  path: ['inspect'],
  summary: 'Decode a Passerelle object WITHOUT verifying it: sealed message, SD-JWT, receipt, consent, node document, agreement, transfer file, JWK.',
  details: [
    'Reads FILE, or standard input with -. The output is labelled UNVERIFIED: nothing is decrypted',
    'and no signature is checked (the JOSE allow-list check is shown as a diagnostic only). Values of',
    'selective disclosures are personal data and are never printed.',
  ].join('\n'),
  args: '<FILE|->',
  positionals: { min: 1, max: 1 },
  options: { json: { type: 'boolean', description: 'Print the decoded structure as JSON' } },
  async run(ctx) {
    const text = await readInput(ctx, ctx.positionals[0]!);
    const inspection = inspectText(text);
    if (flag(ctx, 'json')) {
      printJson(ctx.io.stdout, inspection);
      return;
    }
    println(ctx.io.stdout, UNVERIFIED_BANNER);
    println(ctx.io.stdout);
    for (const line of renderInspection(inspection)) println(ctx.io.stdout, line);
  },
};

export const inspectCommands: Command[] = [inspect];
