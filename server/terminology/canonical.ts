/**
 * The project's canonical URLs for terminology. One base for everything the platform defines
 * (DESIGN.md §3: code systems, value sets, concept maps are published at their canonical URLs).
 */
export const CANONICAL_BASE = 'https://fhir.huren.gz.cn';

export const CATALOGUE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/recognition-catalogue`;
export const NATIONAL_SYSTEM = `${CANONICAL_BASE}/CodeSystem/nhsa-service-item`;
export const LEGACY_SYSTEM = `${CANONICAL_BASE}/CodeSystem/legacy-price-item`;
export const REASON_SYSTEM = `${CANONICAL_BASE}/CodeSystem/not-recognised-reason`;
export const DESIGNATION_USE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/designation-use`;
/** Activities of the platform itself, for Provenance.activity (编码升级, 目录导入). */
export const PLATFORM_ACTIVITY_SYSTEM = `${CANONICAL_BASE}/CodeSystem/platform-activity`;
/** Review status of an entry of an institution's dictionary map (字典数据质控): 待审核 / 已通过 / 已驳回 / 已停用. */
export const DICTIONARY_STATUS_SYSTEM = `${CANONICAL_BASE}/CodeSystem/dictionary-entry-status`;
export const LEGACY_MAP_URL = `${CANONICAL_BASE}/ConceptMap/legacy-national-platform`;
export const CATALOGUE_VALUESET = `${CANONICAL_BASE}/ValueSet/recognition-catalogue`;
export const REASON_VALUESET = `${CANONICAL_BASE}/ValueSet/not-recognised-reason`;

export const valueSetUrl = (id: string) => `${CANONICAL_BASE}/ValueSet/${id}`;

/** The standard concept properties (http://hl7.org/fhir/concept-properties). */
export const CONCEPT_PROPERTIES = 'http://hl7.org/fhir/concept-properties';

/** Kinds of recognition record (互认记录): the encounter reminder and the duplicate-order reminder. */
export const RECORD_KIND_SYSTEM = `${CANONICAL_BASE}/CodeSystem/recognition-record-kind`;
/** The doctor's decision on a recognisable result: recognised, or not recognised (with a reason code). */
export const DECISION_SYSTEM = `${CANONICAL_BASE}/CodeSystem/recognition-decision`;
