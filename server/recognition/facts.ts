/**
 * From FHIR resources to the recognition rules' facts, and the rules' verdicts back to what the outputs
 * show. Pure: the resources come in already loaded; nothing here does I/O.
 *
 * - An institution (Organization) is its district (→ city) and its QC qualifications (extension
 *   qc-qualification: category = a catalogue field, coverage = administrative divisions, period).
 * - A report yields one candidate per catalogue item it carries: the item(s) of DiagnosticReport.code and of
 *   each result Observation.code. Each candidate is judged by rules.evaluate.
 * - Abnormal items are the Observations flagged H, L, A, HH, LL (or another abnormal / critical flag).
 */
import type { Coding, DiagnosticReport, Extension, Observation, Organization, Reference } from '@medplum/fhirtypes';
import type { ApprovedMapping, ApprovedMappings } from '../dictionary/mappings.ts';
import { ADMIN_DIVISION_SYSTEM, EXT } from '../profiles/canonical.ts';
import { CATALOGUE_SYSTEM } from '../terminology/canonical.ts';
import { parseReference } from '../fhir/search/references.ts';
import { CatalogueView, type CatalogueEntry } from './catalogue.ts';
import { evaluate, type Institution, type Qualification, type Verdict } from './rules.ts';
import type { HashStatus } from './model.ts';

export const INTERPRETATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const V2_ABNORMAL_FLAGS = 'http://terminology.hl7.org/CodeSystem/v2-0078';
/** Abnormal flags (检验结果异常): high, low, abnormal, and the critical / significant variants. */
export const ABNORMAL_CODES: ReadonlySet<string> = new Set(['H', 'L', 'A', 'HH', 'LL', 'AA', 'HU', 'LU']);
/** Critical values (危急值). */
export const CRITICAL_CODES: ReadonlySet<string> = new Set(['HH', 'LL', 'AA']);
const NOT_COUNTED_STATUSES = new Set(['cancelled', 'entered-in-error']);

/** China Standard Time, for date-only periods (a qualification "until 2026-12-31" holds all that day). */
const CST = '+08:00';

// ---------------------------------------------------------------------------------------------------
// institutions

/** The city of a district code: 440104 越秀区 → 440100 广州市. */
export function cityOfDistrict(district: string): string {
  return `${district.slice(0, 4)}00`;
}

export function districtOf(org: Organization): string | undefined {
  const code = org.extension?.find((e) => e.url === EXT.district)?.valueCoding?.code;
  return code && /^\d{6}$/.test(code) ? code : undefined;
}

/** The rules' view of an institution. An Organization without a district has no city (covers nothing). */
export function institutionOf(org: Organization | undefined, id = org?.id ?? ''): Institution {
  if (!org) return { id, city: '', qualifications: [] };
  // an institution held across checks (facts-query.ts) is read once; a fresh object is read for itself
  const seen = institutions.get(org);
  if (seen && seen.id === (org.id ?? id)) return seen;
  const district = districtOf(org);
  const institution: Institution = { id: org.id ?? id, city: district ? cityOfDistrict(district) : '', qualifications: qualificationsOf(org) };
  if (Object.isFrozen(org)) institutions.set(org, institution);
  return institution;
}

/** The rules' view of the frozen (unchanging) Organizations, by object. */
const institutions = new WeakMap<Organization, Institution>();

export function qualificationsOf(org: Organization): Qualification[] {
  const out: Qualification[] = [];
  for (const ext of org.extension ?? []) {
    if (ext.url !== EXT.qcQualification) continue;
    const parts = ext.extension ?? [];
    const category = part(parts, 'category')?.valueCoding;
    if (!category?.code || (category.system !== undefined && category.system !== CATALOGUE_SYSTEM)) continue;
    const covers = parts
      .filter((p) => p.url === 'coverage')
      .map((p) => p.valueCoding)
      .filter((c): c is Coding => !!c?.code && (c.system === undefined || c.system === ADMIN_DIVISION_SYSTEM))
      .map((c) => c.code as string);
    const period = part(parts, 'period')?.valuePeriod;
    out.push({
      category: category.code,
      covers,
      start: period?.start ? instant(period.start, 'start') : '1970-01-01T00:00:00Z',
      ...(period?.end ? { end: instant(period.end, 'end') } : {}),
    });
  }
  return out;
}

function part(parts: Extension[], url: string): Extension | undefined {
  return parts.find((p) => p.url === url);
}

/** A FHIR date or dateTime as an instant; a date covers its whole day (China time). */
export function instant(value: string, edge: 'start' | 'end'): string {
  if (value.includes('T')) return value;
  const [y, m = edge === 'start' ? '01' : '12', d] = value.split('-');
  if (edge === 'start') return `${y}-${m}-${d ?? '01'}T00:00:00${CST}`;
  const day = d ?? String(new Date(Date.UTC(Number(y), Number(m), 0)).getUTCDate()).padStart(2, '0');
  return `${y}-${m}-${day}T23:59:59.999${CST}`;
}

// ---------------------------------------------------------------------------------------------------
// reports

export function hrMarkOf(report: DiagnosticReport): string | undefined {
  const v = report.extension?.find((e) => e.url === EXT.hrMark)?.valueString;
  return v && v.trim() !== '' ? v : undefined;
}

/** `Type/id` of a reference of the given type (relative or absolute), if it is one. */
export function refId(ref: Reference | undefined, type: string): string | undefined {
  if (!ref?.reference) return undefined;
  const parsed = parseReference(ref.reference);
  return parsed?.type === type ? parsed.id : undefined;
}

/** The performing institution: the first Organization among DiagnosticReport.performer. */
export function performerId(report: DiagnosticReport): string | undefined {
  for (const p of report.performer ?? []) {
    const id = refId(p, 'Organization');
    if (id) return id;
  }
  return undefined;
}

export function resultIds(report: DiagnosticReport): string[] {
  return (report.result ?? []).map((r) => refId(r, 'Observation')).filter((id): id is string => !!id);
}

export function interpretationCodes(obs: Observation): string[] {
  const out: string[] = [];
  for (const cc of obs.interpretation ?? []) {
    for (const c of cc.coding ?? []) {
      if (!c.code) continue;
      if (c.system === undefined || c.system === INTERPRETATION_SYSTEM || c.system === V2_ABNORMAL_FLAGS) out.push(c.code);
    }
  }
  return out;
}

export function isAbnormal(obs: Observation): boolean {
  return !NOT_COUNTED_STATUSES.has(obs.status) && interpretationCodes(obs).some((c) => ABNORMAL_CODES.has(c));
}

export function isCritical(obs: Observation): boolean {
  return !NOT_COUNTED_STATUSES.has(obs.status) && interpretationCodes(obs).some((c) => CRITICAL_CODES.has(c));
}

/** One catalogue item carried by a report, with the Observations that report it. */
export interface ReportItem {
  item: CatalogueEntry;
  observations: Observation[];
  /** When the item comes from a local code only: the performer's approved dictionary entry that maps it. */
  mapping?: ApprovedMapping;
}

/**
 * The catalogue items of a report: those of DiagnosticReport.code (reported by all its Observations) and
 * those of each result Observation.code; one per item. Local codes count through `local`, the performing
 * institution's approved dictionary entries; an item also carried by a platform code is not credited to a map.
 */
export function itemsOfReport(report: DiagnosticReport, observations: Observation[], catalogue: CatalogueView, local?: ApprovedMappings): ReportItem[] {
  const byCode = new Map<string, ReportItem>();
  const add = (coding: Coding, obs: Observation[]) => {
    const r = catalogue.resolve(coding, local);
    if (!('items' in r)) return;
    for (const item of r.items) {
      const found = byCode.get(item.code);
      if (!found) byCode.set(item.code, { item, observations: [...obs], ...(r.mapping ? { mapping: r.mapping } : {}) });
      else {
        for (const o of obs) if (!found.observations.includes(o)) found.observations.push(o);
        if (!r.mapping) delete found.mapping;
      }
    }
  };
  for (const coding of report.code?.coding ?? []) add(coding, observations);
  for (const obs of observations) for (const coding of obs.code?.coding ?? []) add(coding, [obs]);
  return [...byCode.values()];
}

/** A report with everything needed to judge it (loaded by the service). */
export interface LoadedReport {
  report: DiagnosticReport;
  observations: Observation[];
  performer?: Organization;
  /** The performing institution's approved dictionary entries (its local codes). */
  localCodes?: ApprovedMappings;
  /** The hash status of the report's version, read with it (absent: `unanchored`). */
  hashStatus?: HashStatus;
}

/** One (report, item) judged for a requester. */
export interface Candidate {
  report: DiagnosticReport;
  item: CatalogueEntry;
  performer?: Organization;
  observations: Observation[];
  verdict: Verdict;
  hrMark?: string;
  abnormalCount: number;
  /** The approved dictionary entry through which a local code stands for the item. */
  mapping?: ApprovedMapping;
  /** The report version's hash status (absent: `unanchored`). */
  hashStatus?: HashStatus;
}

export interface Requester {
  id: string;
  city: string;
}

/** Judges every (report, item) of the loaded reports for the requester. */
export function candidatesOf(reports: LoadedReport[], catalogue: CatalogueView, requester: Requester, now: Date): Candidate[] {
  const out: Candidate[] = [];
  for (const loaded of reports) {
    const { report, performer } = loaded;
    const institution = institutionOf(performer, performerId(report));
    const hrMark = hrMarkOf(report);
    for (const { item, observations, mapping } of itemsOfReport(report, loaded.observations, catalogue, loaded.localCodes)) {
      const verdict = evaluate(
        { id: report.id as string, itemCode: item.code, status: report.status, issued: report.issued ?? '', hrMark, performer: institution },
        item,
        requester,
        now
      );
      out.push({
        report,
        item,
        performer,
        observations,
        verdict,
        hrMark,
        abnormalCount: observations.filter(isAbnormal).length,
        ...(mapping ? { mapping } : {}),
        ...(loaded.hashStatus ? { hashStatus: loaded.hashStatus } : {}),
      });
    }
  }
  return out;
}

/** v2-0074 diagnostic service sections that are examinations (imaging, ultrasound, ECG, pathology); the rest are labs. */
const EXAM_SECTIONS: ReadonlySet<string> = new Set(['RAD', 'RX', 'CT', 'NMR', 'NMS', 'US', 'CUS', 'OUS', 'RUS', 'VUS', 'EC', 'CTH', 'SP']);

/** Report kind from its items, else from DiagnosticReport.category (v2-0074: RAD, US, EC… → 检查; LAB, HM… → 检验). */
export function kindOfReport(report: DiagnosticReport, items: CatalogueEntry[]): string | undefined {
  if (items.length > 0) return items[0].kind;
  const codes = (report.category ?? []).flatMap((cc) => cc.coding ?? []).map((c) => c.code ?? '');
  if (codes.length === 0) return undefined;
  return codes.some((c) => EXAM_SECTIONS.has(c)) ? '检查' : '检验';
}
