/**
 * The small generated city of `npm run demo` (docs/running.md): four hospitals in four Guangzhou districts with
 * their quality-control qualifications (质控合格), two patients, reports that are fresh, expired, without the
 * HR mark, an examination, and one coded only with a hospital's local code whose dictionary entry is approved
 * (LIS001 → 血细胞分析). Every entry is a conditional update on a business identifier and every date is a whole
 * day relative to today (Asia/Shanghai), so loading it twice on one day changes nothing.
 * The identity numbers are made up (they are not valid national IDs of anybody).
 */
import { createHash } from 'node:crypto';

const BASE = 'https://fhir.huren.gz.cn';
export const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const DIVISION = `${BASE}/CodeSystem/admin-division`;
const EXT_QC = `${BASE}/StructureDefinition/qc-qualification`;
const EXT_DISTRICT = `${BASE}/StructureDefinition/district`;
const EXT_HR = `${BASE}/StructureDefinition/hr-mark`;
export const ORG_SYSTEM = 'urn:huren:org';
export const NATIONAL_ID = 'urn:oid:2.16.156.10011.1.3';
export const REPORT_SYSTEM = 'https://demo.huren.gz.cn/report-id';
const RESULT_SYSTEM = 'https://demo.huren.gz.cn/result-id';
const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
/** The 番禺 hospital's own lab item codes (its local dictionary). */
export const LOCAL_LIS = 'https://lis.panyu-demo.example/items';
export const LOCAL_MAP_ID = 'demo-panyu-lis';

/** Catalogue categories (QC fields) and items. */
const FIELD = { chemistry: 'F-613bc1', haematology: 'F-92623b', ct: 'F-d21793' };
export const ITEM = {
  potassium: { system: CATALOGUE, code: 'L-065DC84A', display: '钾' }, // 7 days
  chloride: { system: CATALOGUE, code: 'L-D6035934', display: '氯' }, // 7 days
  totalProtein: { system: CATALOGUE, code: 'L-49B9580E', display: '总蛋白' }, // 30 days
  cbc: { system: CATALOGUE, code: 'L-C0581225', display: '血细胞分析' }, // 7 days
  wbc: { system: CATALOGUE, code: 'L-CC142041', display: '白细胞计数' },
  ct: { system: CATALOGUE, code: 'E-941CB143', display: 'X线计算机体层(CT)平扫' }, // 90 days
};

interface Hospital {
  key: string;
  name: string;
  district: string;
  qc: string[];
}

export const HOSPITALS: Hospital[] = [
  { key: 'demo-yuexiu', name: '广州市第一人民医院（演示）', district: '440104', qc: [FIELD.chemistry, FIELD.haematology] }, // 越秀区
  { key: 'demo-tianhe', name: '中山大学附属第三医院（演示）', district: '440106', qc: [FIELD.chemistry, FIELD.ct] }, // 天河区
  { key: 'demo-panyu', name: '广州市番禺区中心医院（演示）', district: '440113', qc: [FIELD.haematology] }, // 番禺区
  { key: 'demo-liwan', name: '广州市荔湾区人民医院（演示）', district: '440103', qc: [] }, // 荔湾区: the requesting hospital
];
export const REQUESTER = 'demo-liwan';

export const PATIENTS = [
  { key: '440101199001010000', family: '陈', given: '互认', gender: 'female', birthDate: '1990-01-01' },
  { key: '440101198502020000', family: '林', given: '演示', gender: 'male', birthDate: '1985-02-02' },
];

interface Result {
  code: { system: string; code: string; display?: string };
  value: number;
  unit: string;
  low: number;
  high: number;
  flag?: string;
}

interface Report {
  key: string;
  patient: string;
  hospital: string;
  code: { system: string; code: string; display?: string };
  text: string;
  daysAgo: number;
  category?: string;
  hr?: boolean;
  results?: Result[];
  conclusion?: string;
}

export const REPORTS: Report[] = [
  // recognisable at 荔湾 for 7 days after issue: the encounter reminder and the duplicate order
  { key: 'demo-k-fresh', patient: PATIENTS[0]!.key, hospital: 'demo-yuexiu', code: ITEM.potassium, text: '血钾', daysAgo: 2, results: [{ code: ITEM.potassium, value: 5.8, unit: 'mmol/L', low: 3.5, high: 5.3, flag: 'H' }] },
  // outside its 30-day window
  { key: 'demo-tp-expired', patient: PATIENTS[0]!.key, hospital: 'demo-yuexiu', code: ITEM.totalProtein, text: '总蛋白', daysAgo: 40, results: [{ code: ITEM.totalProtein, value: 70, unit: 'g/L', low: 65, high: 85 }] },
  // without the HR mark: never recognised
  { key: 'demo-cl-no-hr', patient: PATIENTS[0]!.key, hospital: 'demo-tianhe', code: ITEM.chloride, text: '血氯', daysAgo: 1, hr: false, results: [{ code: ITEM.chloride, value: 101, unit: 'mmol/L', low: 99, high: 110 }] },
  // an examination, 90 days
  { key: 'demo-ct', patient: PATIENTS[1]!.key, hospital: 'demo-tianhe', code: ITEM.ct, text: '胸部CT平扫', daysAgo: 5, category: 'RAD', conclusion: '双肺未见明显异常' },
  // coded only with the 番禺 hospital's local code: recognisable through its approved dictionary entry
  {
    key: 'demo-cbc-local',
    patient: PATIENTS[0]!.key,
    hospital: 'demo-panyu',
    code: { system: LOCAL_LIS, code: 'LIS001', display: '血常规' },
    text: '血常规',
    daysAgo: 1,
    results: [{ code: { system: LOCAL_LIS, code: 'LIS012', display: '白细胞计数' }, value: 2.1, unit: '10*9/L', low: 3.5, high: 9.5, flag: 'L' }],
  },
];

/** The day `n` days before today in Asia/Shanghai, at 09:30 there. */
export function dayAgo(n: number, now = new Date()): string {
  const shanghai = new Date(now.getTime() + 8 * 3_600_000);
  const d = new Date(Date.UTC(shanghai.getUTCFullYear(), shanghai.getUTCMonth(), shanghai.getUTCDate() - n));
  return `${d.toISOString().slice(0, 10)}T09:30:00+08:00`;
}

const orgRef = (key: string) => `Organization?identifier=${ORG_SYSTEM}|${key}`;
const patientRef = (key: string) => `Patient?identifier=${NATIONAL_ID}|${key}`;
const put = (url: string, resource: unknown, fullUrl?: string) => ({ ...(fullUrl ? { fullUrl } : {}), resource, request: { method: 'PUT', url } });

/** The institutions and patients, as one transaction. */
export function cityBundle(): unknown {
  const hospitals = HOSPITALS.map((h) =>
    put(orgRef(h.key), {
      resourceType: 'Organization',
      identifier: [{ system: ORG_SYSTEM, value: h.key }],
      name: h.name,
      extension: [
        { url: EXT_DISTRICT, valueCoding: { system: DIVISION, code: h.district } },
        ...h.qc.map((field) => ({
          url: EXT_QC,
          extension: [
            { url: 'category', valueCoding: { system: CATALOGUE, code: field } },
            { url: 'coverage', valueCoding: { system: DIVISION, code: '440100' } },
            { url: 'period', valuePeriod: { start: '2024-01-01' } },
          ],
        })),
      ],
    })
  );
  const patients = PATIENTS.map((p) =>
    put(patientRef(p.key), { resourceType: 'Patient', identifier: [{ system: NATIONAL_ID, value: p.key }], name: [{ family: p.family, given: [p.given] }], gender: p.gender, birthDate: p.birthDate })
  );
  return { resourceType: 'Bundle', type: 'transaction', entry: [...hospitals, ...patients] };
}

/** One report as the hospital submits it: a transaction Bundle with the report and its results. */
export function reportBundle(r: Report, now = new Date()): unknown {
  const issued = dayAgo(r.daysAgo, now);
  const results = (r.results ?? []).map((o, i) => {
    const id = `${r.key}-${i + 1}`;
    return put(
      `Observation?identifier=${RESULT_SYSTEM}|${id}`,
      {
        resourceType: 'Observation',
        identifier: [{ system: RESULT_SYSTEM, value: id }],
        status: 'final',
        code: { coding: [o.code], text: o.code.display },
        subject: { reference: patientRef(r.patient) },
        effectiveDateTime: issued,
        valueQuantity: { value: o.value, unit: o.unit, system: 'http://unitsofmeasure.org', code: o.unit },
        referenceRange: [{ low: { value: o.low, unit: o.unit }, high: { value: o.high, unit: o.unit } }],
        ...(o.flag ? { interpretation: [{ coding: [{ system: INTERP, code: o.flag }] }] } : {}),
      },
      `urn:uuid:${uuidOf(id)}`
    );
  });
  const report = put(`DiagnosticReport?identifier=${REPORT_SYSTEM}|${r.key}`, {
    resourceType: 'DiagnosticReport',
    identifier: [{ system: REPORT_SYSTEM, value: r.key }],
    ...(r.hr === false ? {} : { extension: [{ url: EXT_HR, valueString: '粤HR' }] }),
    status: 'final',
    category: [{ coding: [{ system: V2_0074, code: r.category ?? 'LAB' }] }],
    code: { coding: [r.code], text: r.text },
    subject: { reference: patientRef(r.patient) },
    performer: [{ reference: orgRef(r.hospital) }],
    issued,
    ...(results.length ? { result: results.map((e) => ({ reference: e.fullUrl })) } : {}),
    ...(r.conclusion ? { conclusion: r.conclusion } : {}),
  });
  return { resourceType: 'Bundle', type: 'transaction', entry: [report, ...results] };
}

/** The 番禺 hospital's dictionary map (its local codes → the catalogue); its LIS001 entry gets approved. */
export function localMap(panyuId: string): unknown {
  return {
    resourceType: 'ConceptMap',
    id: LOCAL_MAP_ID,
    status: 'active',
    name: 'PanyuDemoLis',
    title: '番禺区中心医院（演示）检验项目字典对照',
    useContext: [{ code: { system: 'http://terminology.hl7.org/CodeSystem/usage-context-type', code: 'venue' }, valueReference: { reference: `Organization/${panyuId}` } }],
    group: [
      {
        source: LOCAL_LIS,
        target: CATALOGUE,
        element: [
          { code: 'LIS001', display: '血常规', target: [{ code: ITEM.cbc.code, display: ITEM.cbc.display, equivalence: 'equivalent' }] },
          { code: 'LIS012', display: '白细胞计数', target: [{ code: ITEM.wbc.code, display: ITEM.wbc.display, equivalence: 'equivalent' }] },
        ],
      },
    ],
  };
}

/** A stable urn:uuid for an entry (the fingerprint covers fullUrls: the same day's Bundle is the same Bundle). */
function uuidOf(key: string): string {
  const s = createHash('sha256').update(`huren-demo:${key}`).digest('hex');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-8${s.slice(17, 20)}-${s.slice(20, 32)}`;
}
