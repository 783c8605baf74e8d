/**
 * Report Bundles for the integration kit: reading a hospital's file (refusing what cannot be fingerprinted,
 * before anything is sent), adding the chain Provenance entry, and the synthetic sample report of the
 * conformance run with its variants (retry, correction, tampered copy). The fingerprint itself is the
 * server's (server/fingerprint): the kit never re-implements the contract.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DuplicateMemberError, fingerprint, isChainEntry, parseUniqueJson, readChainAnchor, type HashAlg } from '../server/fingerprint/index.ts';
import { usageError } from './errors.ts';
import { signFingerprint } from '../server/fingerprint/signature.ts';

export type Json = Record<string, any>;

export interface BundleFile {
  path: string;
  /** The file's text exactly (uploaded byte for byte when nothing is added). */
  text: string;
  bundle: Json;
}

/**
 * Reads a Bundle file: a transaction Bundle holding one DiagnosticReport (`report`, the default), or any
 * Bundle that has a fingerprint. Anything else is a usage error (exit 2).
 */
export function readBundleFile(path: string, { report = true } = {}): BundleFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw usageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let bundle: unknown;
  try {
    bundle = parseUniqueJson(text);
  } catch (e) {
    if (e instanceof DuplicateMemberError) throw usageError(`${path}: ${e.message} (同一对象中成员名重复)`);
    throw usageError(`${path} is not valid JSON (文件不是合法的 JSON): ${(e as Error).message.slice(0, 160)}`);
  }
  if (report) checkReportBundle(bundle, path);
  else checkFingerprint(bundle, path);
  return { path, text, bundle: bundle as Json };
}

/** A report Bundle the platform can fingerprint: a transaction Bundle with exactly one DiagnosticReport entry. */
export function checkReportBundle(bundle: unknown, where = 'the Bundle'): void {
  checkFingerprint(bundle, where);
  const b = bundle as Json;
  if (b.type !== 'transaction') throw usageError(`${where}: Bundle.type must be "transaction", not ${JSON.stringify(b.type ?? null)}`);
  if (!Array.isArray(b.entry)) throw usageError(`${where}: Bundle.entry must be an array`);
  const reports = b.entry.filter((e: Json) => e?.resource?.resourceType === 'DiagnosticReport');
  if (reports.length !== 1) throw usageError(`${where}: a report Bundle holds exactly one DiagnosticReport entry (found ${reports.length})`);
  b.entry.forEach((e: Json, i: number) => {
    if (!isChainEntry(e)) return;
    try {
      readChainAnchor(e.resource);
    } catch (err) {
      throw usageError(`${where}: Bundle.entry[${i}] is a chain Provenance with an invalid anchor: ${(err as Error).message}`);
    }
  });
}

/** The fingerprint can be computed (a Bundle, valid Unicode, numbers JCS can write). */
function checkFingerprint(bundle: unknown, where: string): void {
  try {
    fingerprint(bundle);
  } catch (e) {
    throw usageError(`${where} has no fingerprint (无法计算指纹): ${(e as Error).message}`);
  }
}

/** The DiagnosticReport entry and its index. */
export function reportEntry(bundle: Json): { index: number; entry: Json } {
  const index = bundle.entry.findIndex((e: Json) => e?.resource?.resourceType === 'DiagnosticReport');
  return { index, entry: bundle.entry[index] };
}

/** The performing institution's reference inside a Bundle (the chain Provenance's agent). */
export function performer(bundle: Json): string | undefined {
  return reportEntry(bundle).entry?.resource?.performer?.[0]?.reference;
}

/** The performing institution's identifier in the Bundle (its Organization entry), for a signature's `who`. */
export function performerIdentifier(bundle: Json): { system: string; value: string } | undefined {
  const ref = performer(bundle);
  const org = bundle.entry.find((e: Json) => e?.resource?.resourceType === 'Organization' && (!ref || e.fullUrl === ref || ref.startsWith('Organization?')));
  const id = org?.resource?.identifier?.[0] ?? (/^Organization\?identifier=([^|]+)\|(.+)$/.exec(ref ?? '') ? { system: RegExp.$1, value: RegExp.$2 } : undefined);
  return id?.system && id.value ? { system: id.system, value: id.value } : undefined;
}

/** Signs the fingerprint into a chain Provenance (Provenance.signature) with the institution's SM2 key. */
export function signProvenance(prov: Json, fp: string, signKey: string, bundle: Json): Json {
  const who = performerIdentifier(bundle);
  return { ...prov, signature: [signFingerprint(fp, signKey, who ? { identifier: who } : { display: 'institution' })] };
}

/** Signs the fingerprint into Bundle.signature (outside the fingerprint), for a report the platform anchors. */
export function signBundle(bundle: Json, fp: string, signKey: string): Json {
  const who = performerIdentifier(bundle);
  return { ...bundle, signature: signFingerprint(fp, signKey, who ? { identifier: who } : { display: 'institution' }) };
}

/** The reference a chain Provenance in this Bundle uses for the report: its fullUrl. */
export function reportFullUrl(bundle: Json): string {
  const { entry } = reportEntry(bundle);
  if (typeof entry.fullUrl !== 'string' || entry.fullUrl === '') {
    throw usageError('the DiagnosticReport entry has no fullUrl: an in-Bundle chain Provenance targets it by fullUrl (use urn:uuid:…)');
  }
  return entry.fullUrl;
}

/** The Bundle with `provenance` as its (only) chain Provenance entry; other entries unchanged. */
export function withChainProvenance(bundle: Json, provenance: Json): Json {
  return {
    ...bundle,
    entry: [
      ...bundle.entry.filter((e: unknown) => !isChainEntry(e)),
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: provenance, request: { method: 'POST', url: 'Provenance' } },
    ],
  };
}

/** The Bundle without chain Provenance entries (what is uploaded when the Provenance comes later). */
export function withoutChainProvenance(bundle: Json): Json {
  return { ...bundle, entry: bundle.entry.filter((e: unknown) => !isChainEntry(e)) };
}

export function fingerprintOf(bundle: Json, alg: HashAlg): string {
  return fingerprint(bundle, alg);
}

// ------------------------------------------------------------------ the synthetic sample and its variants

const KIT_SYSTEM = 'https://huren.example/integration-kit';

/**
 * A synthetic lab report (no real person: a made-up test patient identified only by the run id), unique per
 * `key`: a test patient, the institution (by its code, created if new), a DiagnosticReport and two results.
 */
export function sampleReport(key: string, org: string): Json {
  const url = () => `urn:uuid:${randomUUID()}`;
  const [patient, organization, report] = [url(), url(), url()];
  const results = [
    { code: '2823-3', text: '钾 potassium', value: 4.1, low: 3.5, high: 5.3 },
    { code: '2951-2', text: '钠 sodium', value: 140, low: 137, high: 147 },
  ].map((r) => ({ ...r, fullUrl: url() }));
  const post = (type: string, ifNoneExist: string) => ({ method: 'POST', url: type, ifNoneExist });
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: patient,
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: `${KIT_SYSTEM}/test-patient`, value: `KIT-${key}` }],
          name: [{ text: '联调测试患者 (synthetic test patient)' }],
        },
        request: post('Patient', `identifier=${KIT_SYSTEM}/test-patient|KIT-${key}`),
      },
      {
        fullUrl: organization,
        resource: { resourceType: 'Organization', identifier: [{ system: 'urn:huren:org', value: org }], name: `institution ${org}` },
        request: post('Organization', `identifier=urn:huren:org|${org}`),
      },
      {
        fullUrl: report,
        resource: {
          resourceType: 'DiagnosticReport',
          identifier: [{ system: `${KIT_SYSTEM}/report-id`, value: `KIT-${key}` }],
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
          code: { coding: [{ system: 'http://loinc.org', code: '24326-1' }], text: '电解质 electrolytes (integration test)' },
          subject: { reference: patient },
          performer: [{ reference: organization }],
          issued: new Date().toISOString(),
          result: results.map((r) => ({ reference: r.fullUrl })),
        },
        request: post('DiagnosticReport', `identifier=${KIT_SYSTEM}/report-id|KIT-${key}`),
      },
      ...results.map((r) => ({
        fullUrl: r.fullUrl,
        resource: {
          resourceType: 'Observation',
          identifier: [{ system: `${KIT_SYSTEM}/result-id`, value: `KIT-${key}-${r.code}` }],
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: r.code }], text: r.text },
          subject: { reference: patient },
          effectiveDateTime: new Date().toISOString(),
          valueQuantity: { value: r.value, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
          referenceRange: [{ low: { value: r.low, unit: 'mmol/L' }, high: { value: r.high, unit: 'mmol/L' } }],
        },
        request: post('Observation', `identifier=${KIT_SYSTEM}/result-id|KIT-${key}-${r.code}`),
      })),
    ],
  };
}

const OWN_TYPES = new Set(['DiagnosticReport', 'Observation', 'ImagingStudy']);

/**
 * A hospital's Bundle made unique for one run: the business identifiers of its report, results and imaging
 * studies (those its `ifNoneExist` names) get `-<suffix>`, so the run creates a new report. Patient and
 * institution entries are left as they are (they match the existing ones).
 */
export function uniquify(bundle: Json, suffix: string): Json {
  const out = structuredClone(bundle);
  for (const e of out.entry) {
    if (isChainEntry(e) || !OWN_TYPES.has(e?.resource?.resourceType)) continue;
    const m = /^identifier=([^|&]*)\|([^&]+)$/.exec(e.request?.ifNoneExist ?? '');
    for (const id of e.resource.identifier ?? []) {
      if (!m || (id.system === m[1] && id.value === m[2])) id.value = `${id.value}-${suffix}`;
    }
    if (m) e.request.ifNoneExist = `identifier=${m[1]}|${m[2]}-${suffix}`;
  }
  return out;
}

/** The first result's numeric value changed (or, with none, the report's conclusion): a one-value edit. */
export function changeOneValue(bundle: Json): { bundle: Json; what: string } {
  const out = structuredClone(bundle);
  const i = out.entry.findIndex((e: Json) => typeof e?.resource?.valueQuantity?.value === 'number');
  if (i >= 0) {
    const q = out.entry[i].resource.valueQuantity;
    q.value = Math.round((q.value + 0.1) * 1000) / 1000;
    return { bundle: out, what: `Bundle.entry[${i}].resource.valueQuantity.value` };
  }
  const { index, entry } = reportEntry(out);
  entry.resource.conclusion = `${entry.resource.conclusion ?? ''} (corrected)`;
  return { bundle: out, what: `Bundle.entry[${index}].resource.conclusion` };
}

/**
 * A correction of a report (a new version of the same report): one value changed, the report's status
 * `corrected`, and the report and its results written by conditional update on their business identifiers
 * (`PUT DiagnosticReport?identifier=…`), so the platform stores new versions of the same resources.
 */
export function correctionOf(bundle: Json): { bundle: Json; what: string } {
  const { bundle: out, what } = changeOneValue(withoutChainProvenance(bundle));
  for (const e of out.entry) {
    if (!OWN_TYPES.has(e?.resource?.resourceType)) continue;
    const m = /^identifier=([^&]+)$/.exec(e.request?.ifNoneExist ?? '');
    if (!m) throw usageError(`a correction needs business identifiers: ${e.resource.resourceType} entry has no ifNoneExist "identifier=system|value"`);
    e.request = { method: 'PUT', url: `${e.resource.resourceType}?identifier=${m[1]}` };
  }
  reportEntry(out).entry.resource.status = 'corrected';
  return { bundle: out, what };
}
