/**
 * Generated data for the recognition tests, stored through the HTTP API: institutions with different QC
 * scopes, requesting institutions in several regions, and a patient with fresh, expired, preliminary,
 * non-HR, non-qualified, lapsed-qualification, amended and never-expiring reports (coded with platform,
 * national, legacy and LOINC codes).
 */
import { randomUUID } from 'node:crypto';
import type { TestFn } from 'ava';
import { startTestServer, type TestServer } from './server.ts';

export const CATALOGUE = 'https://fhir.huren.gz.cn/CodeSystem/recognition-catalogue';
export const NATIONAL = 'https://fhir.huren.gz.cn/CodeSystem/nhsa-service-item';
export const LEGACY = 'https://fhir.huren.gz.cn/CodeSystem/legacy-price-item';
export const LOINC = 'http://loinc.org';
export const DIVISION = 'https://fhir.huren.gz.cn/CodeSystem/admin-division';
export const EXT_QC = 'https://fhir.huren.gz.cn/StructureDefinition/qc-qualification';
export const EXT_DISTRICT = 'https://fhir.huren.gz.cn/StructureDefinition/district';
export const EXT_HR = 'https://fhir.huren.gz.cn/StructureDefinition/hr-mark';
export const NATIONAL_ID = 'urn:oid:2.16.156.10011.1.3';
export const ORG_ID = 'urn:huren:org';
export const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';

/** Catalogue fields (QC categories) and items used. */
export const FIELD = { chemistry: 'F-613bc1', haematology: 'F-92623b', bloodGroup: 'F-e3b818', ct: 'F-d21793' };
export const ITEM = {
  potassium: 'L-065DC84A', // 钾, 7 days
  sodium: 'L-B00F480C', // 钠, 7 days
  chloride: 'L-D6035934', // 氯, 7 days
  calcium: 'L-623F1F1B', // 钙, 7 days
  magnesium: 'L-7FB8136C', // 镁, 7 days (never reported)
  totalProtein: 'L-49B9580E', // 总蛋白, 30 days, national 002503010010000
  glucose: 'L-C7A71DA3', // 葡萄糖, 30 days
  uricAcid: 'L-D72A4297', // 尿酸, 30 days
  creatinine: 'L-A93D1BC4', // 肌酐, 30 days
  urea: 'L-D4114E7A', // 尿素, 30 days
  abo: 'L-FA8D8589', // ABO血型鉴定, no window
  cbc: 'L-C0581225', // 血细胞分析, 7 days, national 002501010150000, legacy 250101015
  wbc: 'L-CC142041', // 白细胞计数, 7 days, LOINC 6690-2
  ct: 'E-941CB143', // X线计算机体层(CT)平扫, 90 days, legacy 210300001
};

const DAY = 86_400_000;
export const daysAgo = (d: number, from = Date.now()) => new Date(from - d * DAY).toISOString();

type Q = { field: string; covers: string[]; start?: string; end?: string };

export function organization(key: string, name: string, district: string | undefined, quals: Q[]) {
  const extension = [
      ...(district ? [{ url: EXT_DISTRICT, valueCoding: { system: DIVISION, code: district } }] : []),
      ...quals.map((q) => ({
        url: EXT_QC,
        extension: [
          { url: 'category', valueCoding: { system: CATALOGUE, code: q.field } },
          ...q.covers.map((c) => ({ url: 'coverage', valueCoding: { system: DIVISION, code: c } })),
          { url: 'period', valuePeriod: { start: q.start ?? '2020-01-01', ...(q.end ? { end: q.end } : {}) } },
        ],
      })),
  ];
  return { resourceType: 'Organization', identifier: [{ system: ORG_ID, value: key }], name, ...(extension.length ? { extension } : {}) };
}

export interface ObsSpec {
  code: { system: string; code: string; display?: string };
  interpretation?: string;
  value?: number;
}

export interface ReportSpec {
  key: string;
  org: string;
  code: { system: string; code: string; display?: string };
  status?: string;
  issued: string;
  hr?: boolean;
  category?: string;
  obs?: ObsSpec[];
}

/** Transaction entries for one report (conditional on its identifier) and its Observations. */
export function reportEntries(patientRef: string, r: ReportSpec): unknown[] {
  const reportUrl = `urn:uuid:${randomUUID()}`;
  const obs = (r.obs ?? []).map((o, i) => ({ fullUrl: `urn:uuid:${randomUUID()}`, o, i }));
  return [
    {
      fullUrl: reportUrl,
      resource: {
        resourceType: 'DiagnosticReport',
        identifier: [{ system: 'https://his.example/report-id', value: r.key }],
        ...(r.hr === false ? {} : { extension: [{ url: EXT_HR, valueString: '粤HR' }] }),
        status: r.status ?? 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: r.category ?? 'LAB' }] }],
        code: { coding: [r.code], text: r.code.display ?? r.key },
        subject: { reference: patientRef },
        performer: [{ reference: `Organization?identifier=${ORG_ID}|${r.org}` }],
        issued: r.issued,
        ...(obs.length ? { result: obs.map((o) => ({ reference: o.fullUrl })) } : {}),
      },
      request: { method: 'POST', url: 'DiagnosticReport', ifNoneExist: `identifier=https://his.example/report-id|${r.key}` },
    },
    ...obs.map(({ fullUrl, o, i }) => ({
      fullUrl,
      resource: {
        resourceType: 'Observation',
        identifier: [{ system: 'https://his.example/result-id', value: `${r.key}-${i}` }],
        status: 'final',
        code: { coding: [o.code], text: o.code.display ?? o.code.code },
        subject: { reference: patientRef },
        valueQuantity: { value: o.value ?? 1, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
        referenceRange: [{ low: { value: 3.5, unit: 'mmol/L' }, high: { value: 5.3, unit: 'mmol/L' } }],
        ...(o.interpretation ? { interpretation: [{ coding: [{ system: INTERP, code: o.interpretation }] }] } : {}),
      },
      request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=https://his.example/result-id|${r.key}-${i}` },
    })),
  ];
}

export interface Seeded {
  /** Organization ids by key. */
  org: Record<string, string>;
  /** DiagnosticReport ids by key. */
  report: Record<string, string>;
  patient: string;
  /** A patient without reports. */
  emptyPatient: string;
  nationalId: string;
}

/** The id in a transaction-response entry's location (`…/Type/id/_history/n`). */
export function idOf(entry: any): string {
  const m = /([A-Za-z]+)\/([^/]+)\/_history\/[^/]+$/.exec(entry.response.location);
  if (!m) throw new Error(`no id in ${entry.response.location}`);
  return m[2];
}

export async function transaction(s: TestServer, entry: unknown[]): Promise<any> {
  const res = await s.fhir('', { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry } });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`transaction failed: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
  return body;
}

/** Stores the scenario; `tag` keeps identifiers unique when several scenarios share a store. */
/** A test file's own server with the scenario seeded (started before its tests, closed after them). */
export function seededServer(test: TestFn): { readonly s: TestServer; readonly d: Seeded } {
  const it = {} as { s: TestServer; d: Seeded };
  test.before(async () => {
    it.s = await startTestServer();
    it.d = await seedScenario(it.s);
  });
  test.after.always(async () => {
    await it.s?.close();
  });
  return it;
}

export async function seedScenario(s: TestServer, tag = randomUUID().slice(0, 8)): Promise<Seeded> {
  const now = Date.now();
  const k = (x: string) => `${x}-${tag}`;
  const orgs = [
    // performing institutions
    organization(k('city'), '广州市第一人民医院', '440104', [
      { field: FIELD.chemistry, covers: ['440100'] },
      { field: FIELD.haematology, covers: ['440100'] },
      { field: FIELD.bloodGroup, covers: ['440100'] },
    ]),
    organization(k('province'), '广东省人民医院', '440106', [
      { field: FIELD.chemistry, covers: ['440000'] },
      { field: FIELD.ct, covers: ['440000'] },
    ]),
    organization(k('partner'), '广州佛山合作医院', '440105', [{ field: FIELD.chemistry, covers: ['440100', '440600'] }]),
    organization(k('none'), '未质控医院', '440111', []),
    organization(k('lapsed'), '质控过期医院', '440112', [
      { field: FIELD.chemistry, covers: ['440100'], end: daysAgo(60, now).slice(0, 10) },
      { field: FIELD.ct, covers: ['440100'], end: daysAgo(60, now).slice(0, 10) },
    ]),
    // requesting institutions
    organization(k('req-gz'), '广州市荔湾区人民医院', '440103', []),
    organization(k('req-fs'), '佛山市禅城区中心医院', '440604', []),
    organization(k('req-sz'), '深圳市福田区人民医院', '440304', []),
    organization(k('req-cs'), '长沙市芙蓉区人民医院', '430102', []),
    organization(k('req-nodistrict'), '地区不详医院', undefined, []),
  ];
  const orgEntries = orgs.map((o) => ({
    fullUrl: `urn:uuid:${randomUUID()}`,
    resource: o,
    request: { method: 'POST', url: 'Organization', ifNoneExist: `identifier=${ORG_ID}|${o.identifier[0].value}` },
  }));
  const nationalId = `44010119900101${String(Math.floor(Math.random() * 9000) + 1000)}`;
  const patientUrl = `urn:uuid:${randomUUID()}`;
  const emptyUrl = `urn:uuid:${randomUUID()}`;
  const patients = [
    { fullUrl: patientUrl, resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: nationalId }], name: [{ family: '陈', given: ['互认'] }], gender: 'female', birthDate: '1990-01-01' }, request: { method: 'POST', url: 'Patient' } },
    { fullUrl: emptyUrl, resource: { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: `${nationalId}X` }], name: [{ family: '李' }] }, request: { method: 'POST', url: 'Patient' } },
  ];
  const first = await transaction(s, [...orgEntries, ...patients]);
  const org: Record<string, string> = {};
  orgs.forEach((o, i) => (org[o.identifier[0].value.replace(`-${tag}`, '')] = idOf(first.entry[i])));
  const patient = idOf(first.entry[orgs.length]);
  const emptyPatient = idOf(first.entry[orgs.length + 1]);
  const p = `Patient/${patient}`;
  const cat = (code: string, display?: string) => ({ system: CATALOGUE, code, ...(display ? { display } : {}) });
  const specs: ReportSpec[] = [
    { key: 'fresh', org: k('city'), code: cat(ITEM.potassium, '钾'), issued: daysAgo(2, now), obs: [{ code: cat(ITEM.potassium, '钾'), interpretation: 'H', value: 5.8 }] },
    { key: 'expired', org: k('city'), code: { system: NATIONAL, code: '002503010010000', display: '总蛋白' }, issued: daysAgo(40, now) },
    { key: 'preliminary', org: k('city'), code: cat(ITEM.sodium, '钠'), status: 'preliminary', issued: daysAgo(1, now) },
    { key: 'no-hr', org: k('city'), code: cat(ITEM.chloride, '氯'), hr: false, issued: daysAgo(1, now) },
    { key: 'not-qualified', org: k('none'), code: cat(ITEM.calcium, '钙'), issued: daysAgo(1, now) },
    { key: 'province', org: k('province'), code: cat(ITEM.glucose, '葡萄糖'), issued: daysAgo(3, now) },
    { key: 'partner', org: k('partner'), code: cat(ITEM.uricAcid, '尿酸'), issued: daysAgo(3, now) },
    { key: 'blood-group', org: k('city'), code: cat(ITEM.abo, 'ABO血型鉴定'), issued: daysAgo(1000, now) },
    { key: 'amended', org: k('city'), code: cat(ITEM.creatinine, '肌酐'), issued: daysAgo(40, now) },
    { key: 'lapsed-before', org: k('lapsed'), code: cat(ITEM.ct, 'CT平扫'), category: 'RAD', issued: daysAgo(70, now) },
    { key: 'lapsed-after', org: k('lapsed'), code: cat(ITEM.urea, '尿素'), issued: daysAgo(10, now) },
    {
      key: 'cbc',
      org: k('city'),
      code: { system: NATIONAL, code: '002501010150000', display: '血细胞分析' },
      issued: daysAgo(1, now),
      obs: [
        { code: { system: LOINC, code: '6690-2', display: '白细胞计数' }, interpretation: 'L', value: 2.1 },
        { code: { system: LOINC, code: '789-8', display: '红细胞计数' }, value: 4.5 },
        { code: { system: LOINC, code: '718-7', display: '血红蛋白' }, interpretation: 'LL', value: 50 },
      ],
    },
    { key: 'ct-legacy', org: k('province'), code: { system: LEGACY, code: '210300001', display: 'CT平扫' }, category: 'RAD', issued: daysAgo(5, now) },
    { key: 'not-in-catalogue', org: k('city'), code: { system: LOINC, code: '99999-9', display: '目录外项目' }, issued: daysAgo(1, now) },
  ];
  const entries = specs.flatMap((r) => reportEntries(p, { ...r, key: k(r.key) }));
  const second = await transaction(s, entries);
  const report: Record<string, string> = {};
  let i = 0;
  for (const r of specs) {
    report[r.key] = idOf(second.entry[i]);
    i += 1 + (r.obs?.length ?? 0);
  }
  // the amended report: a new version, issued yesterday, counts from that version
  const amendedRes = await s.fhir(`DiagnosticReport/${report.amended}`);
  const amended = await amendedRes.json();
  const put = await s.fhir(`DiagnosticReport/${report.amended}`, { method: 'PUT', json: { ...amended, status: 'amended', issued: daysAgo(1, now) } });
  if (put.status !== 200) throw new Error(`amend failed: ${put.status} ${await put.text()}`);
  return { org, report, patient, emptyPatient, nationalId };
}

/** Parameters helpers. */
export const param = (body: any, name: string) => (body.parameter ?? []).find((p: any) => p.name === name);
export const params = (body: any, name: string) => (body.parameter ?? []).filter((p: any) => p.name === name);
export const part = (p: any, name: string) => (p.part ?? []).find((x: any) => x.name === name);
export const parts = (p: any, name: string) => (p.part ?? []).filter((x: any) => x.name === name);

export async function countOf(s: TestServer, type: string, query = ''): Promise<number> {
  const res = await s.fhir(`${type}?_summary=count${query ? `&${query}` : ''}`);
  return (await res.json()).total;
}

/** The institution that asked, as a recognition record holds it (the requesting-institution extension). */
export const requesterOf = (record: any): string | undefined =>
  record?.extension?.find((e: any) => e.url === 'https://fhir.huren.gz.cn/StructureDefinition/requesting-institution')?.valueReference?.reference;
