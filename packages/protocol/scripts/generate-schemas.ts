/**
 * Generates spec/schemas/*.schema.json from the zod schemas, which stay the single source of truth
 * (spec/protocol.md §1.3). `pnpm schemas` writes the files; `pnpm schemas --check` writes nothing
 * and exits non-zero listing every file that differs, is missing or is no longer generated.
 *
 * Conversion uses `io: 'input'`: a schema file describes what a producer may put on the wire and
 * what a verifier accepts before parsing, which is zod's input side. (The message schemas have no
 * defaults or transforms, so input and output coincide there; where they differ, e.g. `.trim()` on
 * consent and agreement texts, the input side is what arrives in a signed payload.)
 *
 * Refinements (cross-field rules, origin checks, error-code membership) are not expressible by
 * `z.toJSONSchema`; the few that have a JSON Schema equivalent are added by `override` below and
 * the rest is stated in each schema's description. The zod schemas and spec/protocol.md win.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { Agreement, AgreementTermination } from '../src/agreement.js';
import { AUDIT_BUNDLE_FORMAT, AuditBundle } from '../src/audit/bundle.js';
import { Checkpoint, CHECKPOINT_TYP } from '../src/audit/checkpoint.js';
import { ConsentRecord } from '../src/consent.js';
import { errorCodes } from '../src/errors.js';
import { MessageHeader, type MessageTypeDefinition } from '../src/messages/define.js';
import { MESSAGE_TYPE_IDS, messageTyp, type MessageType } from '../src/messages/message-types.js';
import { ProblemReportBody } from '../src/messages/problem-report.js';
import { MESSAGE_DEFINITIONS } from '../src/messages/registry.js';
import { NodeDocument } from '../src/node-document.js';
import { Receipt, RECEIPT_TYP } from '../src/receipt.js';
import { SD_ALG } from '../src/sd-jwt.js';
import {
  CountryCode,
  DataCategory,
  Digest,
  ISO_3166_ALPHA2,
  MessageId,
  NodeId,
  Timestamp,
  Uuid,
} from '../src/vocabulary.js';

export const SCHEMA_BASE_URI = 'https://passerelle.example/schemas/';
export const SCHEMAS_DIR = fileURLToPath(new URL('../../../spec/schemas/', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Wire forms that have no zod schema of their own in src (they are assembled by envelope.ts).

/** A concealed data section on the wire (spec/protocol.md §5.5): only a non-empty `_sd` array. */
export const ConcealedSection = z
  .object({ _sd: z.array(Digest).min(1).max(512) })
  .strict()
  .meta({
    id: 'ConcealedSection',
    description: 'A data category as signed: the sorted base64url SHA-256 digests of its disclosures, and nothing else.',
  });

export const WireProvenance = z
  .object({ jwt: z.string().min(1), disclosed: z.array(Digest).max(512) })
  .strict()
  .meta({
    id: 'MessageProvenance',
    description:
      "Onward messages: the original issuer-signed JWT, unchanged, and the digests of the original's disclosures passed on (spec/protocol.md §5.6).",
  });

/** An object-property disclosure (RFC 9901 §4.2.1) as this profile allows it. */
export const DisclosureArray = z
  .tuple([z.string().min(16).max(256), z.string().min(1).max(256), z.unknown()])
  .meta({
    id: 'SdJwtDisclosure',
    description:
      'Decoded disclosure: [salt (at least 16 base64url characters), claim name, claim value]. Array-element disclosures are not used. The name is never _sd, ... or _sd_alg.',
  });

/** The SDK form of a message of one type: header (with its type fixed), body, data. */
export function messageFormSchema(def: MessageTypeDefinition): z.ZodType {
  return z
    .object({
      header: MessageHeader.extend({ type: z.literal(def.type), purpose: z.enum(def.purposes as [string, ...string[]]) }),
      body: def.body,
      data: def.data,
      consentRecord: z.string().min(1).optional(),
      onward: z.object({ jwt: z.string().min(1), disclosures: z.array(z.string().min(1)).max(512) }).strict().optional(),
    })
    .strict();
}

/** The payload of a message's issuer-signed JWT (spec/protocol.md §5.3). */
export function wirePayloadSchema(def: MessageTypeDefinition): z.ZodObject {
  const categories = Object.keys(def.data.shape) as DataCategory[];
  const data = z.object(Object.fromEntries(categories.map((c) => [c, ConcealedSection.optional()]))).strict();
  const consent = def.requiresConsent ? Uuid : Uuid.optional();
  return z
    .object({
      iss: NodeId,
      aud: NodeId,
      jti: MessageId,
      iat: z.int().min(0),
      exp: z.int().min(0),
      type: z.literal(def.type),
      thread: Uuid,
      agreement: Uuid,
      consent,
      purpose: z.enum(def.purposes as [string, ...string[]]),
      categories: z.array(DataCategory).max(DataCategory.options.length),
      body: def.body,
      data,
      consent_record: z.string().min(1).optional(),
      provenance: WireProvenance.optional(),
      _sd_alg: z.literal(SD_ALG),
    })
    .strict();
}

// ---------------------------------------------------------------------------------------------
// The list of generated files

export interface SchemaEntry {
  /** File name without `.schema.json`. */
  name: string;
  title: string;
  description: string;
  schema: z.ZodType;
}

function definitionOf(type: MessageType): MessageTypeDefinition {
  return MESSAGE_DEFINITIONS[type] as MessageTypeDefinition;
}

export function schemaEntries(): SchemaEntry[] {
  const entries: SchemaEntry[] = [];
  for (const type of MESSAGE_TYPE_IDS) {
    const def = definitionOf(type);
    const categories = Object.keys(def.data.shape);
    const carries = categories.length > 0 ? `data categories ${categories.join(', ')}` : 'no personal data';
    entries.push({
      name: type,
      title: `Passerelle ${type} message`,
      description:
        `A ${type} message in the SDK form (header, body, data) before it is signed; ${carries}; purposes ${def.purposes.join(', ')}. ` +
        'header.categories must equal the categories whose data section has at least one field (spec/protocol.md §5.2).',
      schema: messageFormSchema(def),
    });
    entries.push({
      name: `${type}.wire`,
      title: `Passerelle ${type} message: signed payload`,
      description:
        `Payload of the issuer-signed JWT of a ${type} message (JWS typ ${messageTyp(type)}): every personal field concealed ` +
        'behind a digest. categories must equal the categories present in data (plus, for onward messages, those of the disclosed digests) (spec/protocol.md §5.3).',
      schema: wirePayloadSchema(def),
    });
  }
  entries.push(
    {
      name: 'sd-jwt-disclosure',
      title: 'Passerelle selective disclosure',
      description: 'A disclosure after base64url decoding (RFC 9901 §4.2.1, object properties only; spec/protocol.md §5.5).',
      schema: DisclosureArray,
    },
    {
      name: 'receipt',
      title: 'Passerelle receipt',
      description: `Payload of a receipt (compact JWS, typ ${RECEIPT_TYP}). A rejection names its code; an acceptance has none (spec/protocol.md §7).`,
      schema: Receipt,
    },
    {
      name: 'node-document',
      title: 'Passerelle node document',
      description:
        'Payload of a node document (general JWS, typ passerelle-node+json). kid equals the RFC 7638 thumbprint of jwk; the inbox has the origin of id (spec/protocol.md §8).',
      schema: NodeDocument,
    },
    {
      name: 'consent-record',
      title: 'Passerelle consent record',
      description: 'Payload of a consent record (compact JWS, typ passerelle-consent+jwt; spec/consent-and-agreements.md).',
      schema: ConsentRecord,
    },
    {
      name: 'agreement',
      title: 'Passerelle data-sharing agreement',
      description: 'Payload of an agreement (general JWS co-signed by every party, typ passerelle-agreement+json; spec/consent-and-agreements.md).',
      schema: Agreement,
    },
    {
      name: 'agreement-termination',
      title: 'Passerelle agreement termination',
      description: 'Payload of a termination by one party (compact JWS, typ passerelle-agreement-termination+jwt; spec/consent-and-agreements.md).',
      schema: AgreementTermination,
    },
    {
      name: 'checkpoint',
      title: 'Passerelle audit-log checkpoint',
      description: `Payload of a signed audit-log checkpoint (compact JWS, typ ${CHECKPOINT_TYP}). An empty log (size 0) has the empty-tree root (RFC 9162 §2.1.1).`,
      schema: Checkpoint,
    },
    {
      name: 'audit-bundle',
      title: 'Passerelle audit bundle',
      description:
        `An audit bundle (format ${AUDIT_BUNDLE_FORMAT}), the file an auditor verifies offline: node documents with their key history, ` +
        'agreements, consent records, the signed parts of messages (disclosures only in a lawful full audit), receipts, log records, ' +
        'checkpoints and proofs, with the exporter’s attestation (spec/audit.md §4). The verifier’s cross-checks are not expressible here.',
      schema: AuditBundle,
    },
  );
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Conversion

function unwrapOptional(schema: z.ZodType): z.ZodType {
  return schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
}

/** Refinements with an exact or safe (never stricter than the code) JSON Schema counterpart. */
const ERROR_CODE_SCHEMAS = new Set<unknown>([unwrapOptional(Receipt.shape.code), unwrapOptional(ProblemReportBody.shape.code)]);

function override(ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }): void {
  const { zodSchema: s, jsonSchema: j } = ctx;
  if (s === Timestamp) {
    j.format = 'date-time';
    j.pattern = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?Z$';
  } else if (s === CountryCode) {
    j.enum = [...ISO_3166_ALPHA2];
  } else if (s === NodeId) {
    // Looser than isNodeId (which also requires the value to equal its URL origin).
    j.pattern = '^(https://[a-z0-9.\\-]+(:[0-9]{1,5})?|http://(localhost|127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[::1\\])(:[0-9]{1,5})?)$';
  } else if (ERROR_CODE_SCHEMAS.has(s)) {
    j.enum = [...errorCodes];
    j.description = 'A protocol error code (spec/errors.md).';
  }
}

/** Recursively sorts object keys (arrays keep their order: enum and required order carry meaning for readers). */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function toJsonSchema(entry: SchemaEntry): Record<string, unknown> {
  const generated = z.toJSONSchema(entry.schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'throw',
    override: override as never,
  }) as Record<string, unknown>;
  return sortKeys({
    ...generated,
    $id: `${SCHEMA_BASE_URI}${entry.name}.schema.json`,
    title: entry.title,
    description: entry.description,
  }) as Record<string, unknown>;
}

/** File name → exact file content (two-space JSON, trailing newline), sorted by file name. */
export function generateSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of [...schemaEntries()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    files.set(`${entry.name}.schema.json`, `${JSON.stringify(toJsonSchema(entry), null, 2)}\n`);
  }
  return files;
}

export interface DriftReport {
  changed: string[];
  missing: string[];
  stale: string[];
}

/** Compares generated schemas with the files in `dir`. */
export function checkSchemas(dir: string = SCHEMAS_DIR): DriftReport {
  const generated = generateSchemas();
  const present = new Set(readdirSync(dir).filter((f) => f.endsWith('.schema.json')));
  const report: DriftReport = { changed: [], missing: [], stale: [] };
  for (const [name, text] of generated) {
    if (!present.has(name)) report.missing.push(name);
    else if (readFileSync(`${dir}${name}`, 'utf8') !== text) report.changed.push(name);
  }
  for (const name of present) if (!generated.has(name)) report.stale.push(name);
  return report;
}

function main(argv: readonly string[]): number {
  if (argv.includes('--check')) {
    const { changed, missing, stale } = checkSchemas();
    const drifted = [...changed.map((f) => `changed: ${f}`), ...missing.map((f) => `missing: ${f}`), ...stale.map((f) => `not generated: ${f}`)];
    if (drifted.length === 0) {
      console.log(`spec/schemas: ${generateSchemas().size} files up to date`);
      return 0;
    }
    console.error(`spec/schemas drifted from the zod schemas (run \`pnpm schemas\`):\n  ${drifted.join('\n  ')}`);
    return 1;
  }
  const files = generateSchemas();
  for (const name of readdirSync(SCHEMAS_DIR)) {
    if (name.endsWith('.schema.json') && !files.has(name)) rmSync(`${SCHEMAS_DIR}${name}`);
  }
  for (const [name, text] of files) writeFileSync(`${SCHEMAS_DIR}${name}`, text);
  console.log(`spec/schemas: wrote ${files.size} files`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
