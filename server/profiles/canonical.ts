/**
 * Canonical URLs of the platform's profiles and extensions (published from `profiles/` as
 * StructureDefinitions). One place, so that the recognition rules, the chain provenance and the profiles
 * themselves agree.
 */
import { CANONICAL_BASE } from '../terminology/canonical.ts';

const sd = (name: string) => `${CANONICAL_BASE}/StructureDefinition/${name}`;

/** Profiles. */
export const PROFILE = {
  diagnosticReport: sd('recognition-diagnostic-report'),
  observation: sd('recognition-observation'),
  chainProvenance: sd('chain-provenance'),
  recognitionRecord: sd('recognition-record'),
  institution: sd('recognition-institution'),
} as const;

/** Extensions. */
export const EXT = {
  /** DiagnosticReport: the HR (互认) mark printed on the report, e.g. 粤HR. valueString. */
  hrMark: sd('hr-mark'),
  /**
   * Organization: one QC qualification (质控合格). Complex: `category` (valueCoding, a field of the
   * recognition catalogue), `coverage` (valueCoding 1..*, administrative divisions whose institutions must
   * recognise it: a city, a province, or partner cities), `period` (valuePeriod).
   */
  qcQualification: sd('qc-qualification'),
  /** Organization: the district (区) the institution belongs to. valueCoding (GB/T 2260). */
  district: sd('district'),
  /**
   * DetectedIssue.mitigation (a recognition record's decision): the implicated report the doctor's decision
   * is about. valueReference(DiagnosticReport). Absent: the decision covers every implicated report.
   */
  decisionReport: sd('decision-report'),
  /**
   * DetectedIssue (a recognition record): the institution that asked. valueReference(Organization). The
   * record's author is the platform's recognition service (RECOGNITION_SERVICE).
   */
  requestingInstitution: sd('requesting-institution'),
  /**
   * Provenance: the chain information of a report version (DESIGN.md §4). Complex; its parts and the rule that
   * makes a Provenance a chain Provenance are the fingerprint contract (docs/fingerprint.md,
   * fingerprint/chain-provenance.ts, whose CHAIN_ANCHOR_URL is this URL).
   */
  chainAnchor: sd('chain-anchor'),
} as const;

/** Administrative divisions of the People's Republic of China (GB/T 2260), e.g. 440100 广州市. */
/** The platform's recognition service, author of every recognition record (a logical Device reference). */
export const RECOGNITION_SERVICE = {
  type: 'Device',
  identifier: { system: `${CANONICAL_BASE}/sid/device`, value: 'huren-recognition' },
  display: '互认平台互认服务',
} as const;

export const ADMIN_DIVISION_SYSTEM = `${CANONICAL_BASE}/CodeSystem/admin-division`;

/**
 * The hash-consistent badge (哈希一致标识, server/provenance/badge.ts): a meta.tag that report responses carry
 * (code = the report version's hash-consistency status). Added to responses only, never stored: incoming
 * writes are stripped of it (fhir/repository.ts).
 */
export const HASH_BADGE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/hash-badge`;
