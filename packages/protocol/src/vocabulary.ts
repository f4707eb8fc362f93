/** Common vocabulary (spec/protocol.md §2). Zod schemas are the single source of truth. */
import { z } from 'zod';

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

// A node sees few distinct node ids (itself and its peers) in every message header, consent and
// receipt, and URL parsing is the costliest check of a header; verdicts are remembered, boundedly.
const nodeIdVerdicts = new Map<string, boolean>();
const NODE_ID_MEMO_LIMIT = 1024;

/** A node id is an origin: scheme, host and optional port, nothing else. */
export function isNodeId(value: string): boolean {
  if (typeof value !== 'string') return false;
  let verdict = nodeIdVerdicts.get(value);
  if (verdict === undefined) {
    verdict = checkNodeId(value);
    if (nodeIdVerdicts.size >= NODE_ID_MEMO_LIMIT) nodeIdVerdicts.clear();
    nodeIdVerdicts.set(value, verdict);
  }
  return verdict;
}

function checkNodeId(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.origin !== value) return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && LOOPBACK_HOST.test(url.hostname);
}

export const NodeId = z
  .string()
  .max(256)
  .refine(isNodeId, { message: 'must be an https origin (http only for loopback hosts), lower case, no path' })
  .meta({ id: 'NodeId', description: 'An HTTPS origin identifying a node; http:// only for loopback hosts.' });
export type NodeId = z.infer<typeof NodeId>;

/** Officially assigned ISO 3166-1 alpha-2 codes. */
export const ISO_3166_ALPHA2 = (
  'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
  'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
  'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP ' +
  'KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT ' +
  'MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW ' +
  'SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG ' +
  'UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
).split(' ');
const COUNTRIES = new Set(ISO_3166_ALPHA2);

export const CountryCode = z
  .string()
  .refine((v) => COUNTRIES.has(v), { message: 'must be an assigned ISO 3166-1 alpha-2 code' })
  .meta({ id: 'CountryCode', description: 'ISO 3166-1 alpha-2 country code (upper case).' });
export type CountryCode = z.infer<typeof CountryCode>;

// RFC 5646 §2.1 well-formedness (langtag or private use or the grandfathered irregulars we accept by regex).
const BCP47 =
  /^(?:[a-zA-Z]{2,3}(?:-[a-zA-Z]{3}){0,3}|[a-zA-Z]{4,8})(?:-[a-zA-Z]{4})?(?:-(?:[a-zA-Z]{2}|\d{3}))?(?:-(?:[a-zA-Z\d]{5,8}|\d[a-zA-Z\d]{3}))*(?:-[\da-wy-zA-WY-Z](?:-[a-zA-Z\d]{2,8})+)*(?:-x(?:-[a-zA-Z\d]{1,8})+)?$|^x(?:-[a-zA-Z\d]{1,8})+$/;

export const LanguageTag = z
  .string()
  .max(64)
  .regex(BCP47, 'must be a well-formed BCP 47 language tag')
  .meta({ id: 'LanguageTag', description: 'A well-formed BCP 47 language tag.' });
export type LanguageTag = z.infer<typeof LanguageTag>;

const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;

export function isUtcTimestamp(value: string): boolean {
  const m = RFC3339_UTC.exec(value);
  if (!m) return false;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo! - 1 && date.getUTCDate() === d && h! < 24 && mi! < 60 && s! < 60;
}

export const Timestamp = z
  .string()
  .refine(isUtcTimestamp, { message: 'must be an RFC 3339 timestamp in UTC (Z)' })
  .meta({ id: 'Timestamp', description: 'RFC 3339 date-time in UTC, e.g. 2026-05-01T10:00:00Z.' });
export type Timestamp = z.infer<typeof Timestamp>;

/** Second-precision RFC 3339 UTC string for a Date (the precision of JWT NumericDate). */
export function toTimestamp(date: Date | number): Timestamp {
  const ms = typeof date === 'number' ? date : date.getTime();
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function toEpochSeconds(timestamp: string): number {
  return Math.floor(Date.parse(timestamp) / 1000);
}

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const UUID_ANY = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const MessageId = z
  .string()
  .regex(UUID_V7, 'must be a lower-case UUID version 7')
  .meta({ id: 'MessageId', description: 'UUID version 7 (RFC 9562), lower case.' });

/** Identifiers of threads, consents and agreements: any RFC 9562 UUID, lower case. */
export const Uuid = z.string().regex(UUID_ANY, 'must be a lower-case RFC 9562 UUID').meta({ id: 'Uuid' });

/** Closed vocabulary of data categories (spec/protocol.md §2.3). */
export const DATA_CATEGORIES = [
  'identity',
  'contact',
  'civil-status',
  'documents',
  'family',
  'education-skills',
  'employment',
  'health',
  'vulnerability',
  'legal-status',
  'return-travel',
  'reintegration-plan',
  'monitoring',
] as const;
export const DataCategory = z.enum(DATA_CATEGORIES).meta({ id: 'DataCategory' });
export type DataCategory = z.infer<typeof DataCategory>;

/** Special categories (GDPR art. 9 and vulnerability): need explicit consent. */
export const SPECIAL_CATEGORIES: ReadonlySet<DataCategory> = new Set<DataCategory>(['health', 'vulnerability']);

export function isSpecialCategory(category: DataCategory): boolean {
  return SPECIAL_CATEGORIES.has(category);
}

export const PURPOSES = [
  'referral',
  'return-counselling',
  'reintegration-planning',
  'reintegration-assistance',
  'monitoring',
  'case-coordination',
] as const;
export const Purpose = z.enum(PURPOSES).meta({ id: 'Purpose' });
export type Purpose = z.infer<typeof Purpose>;

export const NODE_ROLES = [
  'reception-agency',
  'outreach-team',
  'return-counselling',
  'ngo',
  'reintegration-partner',
  'local-authority',
  'service-provider',
] as const;
export const NodeRole = z.enum(NODE_ROLES).meta({ id: 'NodeRole' });
export type NodeRole = z.infer<typeof NodeRole>;

/** Pseudonymous subject reference: opaque, never a name. */
export const SubjectRef = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/, 'must be an opaque pseudonymous reference (8-128 characters)')
  .meta({ id: 'SubjectRef', description: 'Pseudonymous subject reference chosen by the controller; never a name.' });

/** A digest as used on the wire: base64url SHA-256, 43 characters. */
export const Digest = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url SHA-256 digest').meta({ id: 'Digest' });
