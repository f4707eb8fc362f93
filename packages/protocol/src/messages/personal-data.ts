/**
 * Personal data, grouped by data category (spec/protocol.md §5.2). Every property here is
 * selectively disclosable; the category a field belongs to is fixed by this module, so the
 * categories a message carries can be derived from its fields — and, on the wire, from the
 * concealed structure alone without any disclosure.
 */
import { z } from 'zod';
import { CountryCode, DataCategory, LanguageTag, Timestamp } from '../vocabulary.js';

const Text = (max = 2000) => z.string().min(1).max(max);
const IsoDate = z.string().regex(/^\d{4}(-\d{2}(-\d{2})?)?$/, 'must be YYYY, YYYY-MM or YYYY-MM-DD');
const Score = z.number().int().min(0).max(4).meta({ description: '0 (no progress) to 4 (fully achieved).' });

export const IdentityData = z
  .object({
    givenName: Text(200),
    familyName: Text(200),
    otherNames: z.array(Text(200)).max(10),
    dateOfBirth: IsoDate,
    placeOfBirth: Text(200),
    sex: z.enum(['female', 'male', 'other', 'undisclosed']),
    nationalities: z.array(CountryCode).max(5),
    preferredLanguages: z.array(LanguageTag).max(10),
  })
  .partial()
  .strict()
  .meta({ id: 'IdentityData' });

export const ContactData = z
  .object({ phone: Text(40), email: Text(254), address: Text(500), preferredChannel: z.enum(['phone', 'email', 'in-person', 'through-caseworker']) })
  .partial()
  .strict()
  .meta({ id: 'ContactData' });

export const CivilStatusData = z
  .object({ maritalStatus: z.enum(['single', 'married', 'partnership', 'divorced', 'widowed', 'unknown']), dependants: z.number().int().min(0).max(50) })
  .partial()
  .strict()
  .meta({ id: 'CivilStatusData' });

export const DocumentsData = z
  .object({
    documents: z
      .array(
        z
          .object({
            kind: z.enum(['passport', 'national-id', 'travel-document', 'laissez-passer', 'residence-permit', 'birth-certificate', 'other']),
            number: Text(64).optional(),
            issuingCountry: CountryCode.optional(),
            expiresOn: IsoDate.optional(),
            held: z.boolean(),
          })
          .strict(),
      )
      .max(20),
  })
  .partial()
  .strict()
  .meta({ id: 'DocumentsData' });

export const FamilyData = z
  .object({
    household: z
      .array(
        z
          .object({
            relationship: z.enum(['spouse', 'partner', 'child', 'parent', 'sibling', 'other-relative', 'other']),
            ageYears: z.number().int().min(0).max(130).optional(),
            accompanying: z.boolean(),
          })
          .strict(),
      )
      .max(30),
    familyInOriginCountry: Text(),
    familySupportExpected: z.boolean(),
  })
  .partial()
  .strict()
  .meta({ id: 'FamilyData' });

export const EducationSkillsData = z
  .object({
    education: z
      .array(z.object({ iscedLevel: z.number().int().min(0).max(8), field: Text(200).optional(), completed: z.boolean(), country: CountryCode.optional() }).strict())
      .max(20),
    skills: z.array(z.object({ name: Text(200), level: z.enum(['basic', 'intermediate', 'advanced']) }).strict()).max(50),
    languages: z.array(z.object({ tag: LanguageTag, level: z.enum(['basic', 'intermediate', 'fluent', 'native']) }).strict()).max(20),
    certifications: z.array(Text(200)).max(20),
  })
  .partial()
  .strict()
  .meta({ id: 'EducationSkillsData' });

export const EmploymentData = z
  .object({
    workHistory: z
      .array(z.object({ occupation: Text(200), sector: Text(200).optional(), country: CountryCode.optional(), from: IsoDate.optional(), to: IsoDate.optional() }).strict())
      .max(30),
    currentSituation: z.enum(['employed', 'self-employed', 'unemployed', 'not-allowed-to-work', 'student', 'other']),
  })
  .partial()
  .strict()
  .meta({ id: 'EmploymentData' });

export const HealthData = z
  .object({
    needs: z.array(Text(500)).max(20),
    psychosocialNeeds: z.array(Text(500)).max(20),
    ongoingTreatment: z.boolean(),
    fitToTravel: z.boolean(),
    followUpRequired: z.boolean(),
  })
  .partial()
  .strict()
  .meta({ id: 'HealthData', description: 'Special category: needs explicit consent.' });

export const VulnerabilityData = z
  .object({
    indicators: z
      .array(
        z.enum([
          'unaccompanied-minor',
          'separated-child',
          'victim-of-trafficking',
          'survivor-of-violence',
          'disability',
          'older-person',
          'single-parent',
          'serious-medical-condition',
          'other',
        ]),
      )
      .max(10),
    notes: Text(),
  })
  .partial()
  .strict()
  .meta({ id: 'VulnerabilityData', description: 'Special category: needs explicit consent.' });

export const LegalStatusData = z
  .object({
    status: z.enum(['asylum-seeker', 'rejected-asylum-seeker', 'irregular-stay', 'temporary-protection', 'regular-stay', 'other']),
    procedureStage: Text(200),
    returnDecision: z.boolean(),
  })
  .partial()
  .strict()
  .meta({ id: 'LegalStatusData' });

export const ReturnTravelData = z
  .object({
    plannedDeparture: IsoDate,
    departureCountry: CountryCode,
    destinationCountry: CountryCode,
    destinationLocality: Text(200),
    arrivalAssistance: z.boolean(),
    escortNeeded: z.boolean(),
  })
  .partial()
  .strict()
  .meta({ id: 'ReturnTravelData' });

export const ReintegrationPlanData = z
  .object({
    intendedActivities: z
      .array(
        z
          .object({
            dimension: z.enum(['economic', 'social', 'psychosocial']),
            kind: z.enum(['business', 'employment', 'education', 'vocational-training', 'housing', 'counselling', 'community', 'other']),
            description: Text(),
          })
          .strict(),
      )
      .max(20),
    housing: z.object({ arrangement: z.enum(['family', 'rented', 'owned', 'temporary', 'none']), supportNeeded: z.boolean() }).strict(),
    budgetEur: z.number().min(0).max(1_000_000),
    goals: z.array(Text(500)).max(20),
  })
  .partial()
  .strict()
  .meta({ id: 'ReintegrationPlanData' });

export const MonitoringData = z
  .object({
    assistanceDelivered: z
      .array(z.object({ kind: Text(200), deliveredOn: IsoDate, amountEur: z.number().min(0).max(1_000_000).optional() }).strict())
      .max(50),
    progress: z.object({ economic: Score, social: Score, psychosocial: Score }).strict(),
    status: z.enum(['on-track', 'at-risk', 'completed', 'discontinued', 'lost-contact']),
    observedAt: Timestamp,
    notes: Text(),
  })
  .partial()
  .strict()
  .meta({ id: 'MonitoringData' });

export const CATEGORY_DATA = {
  identity: IdentityData,
  contact: ContactData,
  'civil-status': CivilStatusData,
  documents: DocumentsData,
  family: FamilyData,
  'education-skills': EducationSkillsData,
  employment: EmploymentData,
  health: HealthData,
  vulnerability: VulnerabilityData,
  'legal-status': LegalStatusData,
  'return-travel': ReturnTravelData,
  'reintegration-plan': ReintegrationPlanData,
  monitoring: MonitoringData,
} as const satisfies Record<DataCategory, z.ZodObject>;

export type CategoryData = { [C in DataCategory]: z.infer<(typeof CATEGORY_DATA)[C]> };

/** A strict object allowing only the given categories' sections. */
export function dataSchema<const C extends readonly DataCategory[]>(categories: C) {
  const shape = Object.fromEntries(categories.map((c) => [c, CATEGORY_DATA[c].optional()])) as {
    [K in C[number]]: z.ZodOptional<(typeof CATEGORY_DATA)[K]>;
  };
  return z.object(shape).strict();
}

/** Categories a data object fills: a section counts when it has at least one defined field. */
export function deriveCategories(data: Readonly<Record<string, unknown>>): DataCategory[] {
  const out: DataCategory[] = [];
  for (const category of DataCategory.options) {
    const section = data[category];
    if (section && typeof section === 'object' && Object.values(section).some((v) => v !== undefined)) out.push(category);
  }
  return out;
}
