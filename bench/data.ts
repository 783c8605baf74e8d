/**
 * Synthetic but realistic data for the benchmark: Guangzhou hospitals (Organization), patients with
 * Chinese identifiers (Patient), and laboratory reports (DiagnosticReport, category LAB) of about fifteen
 * results each (Observation with LOINC codes, UCUM quantities, reference ranges and interpretation).
 *
 * Everything is generated from a seeded PRNG: the same seed gives the same data. Identifier values are
 * synthetic (national IDs have a valid GB 11643 check digit but belong to nobody).
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, DiagnosticReport, Observation, Organization, Patient } from '@medplum/fhirtypes';

export const NATIONAL_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3'; // 居民身份证号码
export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
/** Placeholder systems under the reserved `.example` domain: institution codes, national service items, MRNs. */
export const ORG_CODE_SYSTEM = 'http://huren.example/sid/institution-code';
export const SERVICE_ITEM_SYSTEM = 'http://huren.example/CodeSystem/nhsa-service-item';
export const INSURANCE_SYSTEM = 'http://huren.example/sid/medical-insurance-card';
const mrnSystem = (orgCode: string) => `http://huren.example/sid/mrn/${orgCode}`;
const reportNoSystem = (orgCode: string) => `http://huren.example/sid/lab-report/${orgCode}`;

/** Mulberry32: small, fast, good enough for test data. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)];
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Institutions

const HOSPITALS: [string, string][] = [
  ['中山大学附属第一医院', '越秀区'],
  ['广东省人民医院', '越秀区'],
  ['南方医科大学南方医院', '白云区'],
  ['广州医科大学附属第一医院', '越秀区'],
  ['中山大学孙逸仙纪念医院', '越秀区'],
  ['暨南大学附属第一医院', '天河区'],
  ['广州市第一人民医院', '越秀区'],
  ['广东省中医院', '越秀区'],
  ['广州中医药大学第一附属医院', '白云区'],
  ['中山大学附属第三医院', '天河区'],
  ['广州市妇女儿童医疗中心', '天河区'],
  ['广东省第二人民医院', '海珠区'],
  ['广州医科大学附属第二医院', '海珠区'],
  ['南方医科大学珠江医院', '海珠区'],
  ['中山大学肿瘤防治中心', '越秀区'],
  ['广州市红十字会医院', '海珠区'],
  ['广州市番禺区中心医院', '番禺区'],
  ['广州市花都区人民医院', '花都区'],
  ['广州市增城区人民医院', '增城区'],
  ['广州市从化区中心医院', '从化区'],
];

export interface Institution {
  resource: Organization;
  code: string;
}

export function institutions(count = 20): Institution[] {
  return HOSPITALS.slice(0, count).map(([name, district], i) => {
    const code = `GZ${String(4401001 + i)}`;
    return {
      code,
      resource: {
        resourceType: 'Organization',
        identifier: [{ system: ORG_CODE_SYSTEM, value: code }],
        active: true,
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov', display: 'Healthcare Provider' }] }],
        name,
        telecom: [{ system: 'phone', value: `020-8${String(7000000 + i * 1311).slice(0, 7)}`, use: 'work' }],
        address: [{ use: 'work', city: '广州市', district, state: '广东省', country: 'CN' }],
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Patients

const SURNAMES = ['陈', '李', '黄', '张', '梁', '林', '刘', '吴', '罗', '何', '郑', '谢', '周', '王', '杨', '冯', '邓', '朱', '麦', '欧阳'];
const GIVEN = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超', '秀英', '嘉欣', '子轩', '梓涵', '浩然', '婷', '志强', '丽华', '建国', '国华', '文', '斌', '慧'];
const DISTRICTS: [string, string][] = [
  ['440103', '荔湾区'],
  ['440104', '越秀区'],
  ['440105', '海珠区'],
  ['440106', '天河区'],
  ['440111', '白云区'],
  ['440112', '黄埔区'],
  ['440113', '番禺区'],
  ['440114', '花都区'],
  ['440115', '南沙区'],
  ['440117', '从化区'],
  ['440118', '增城区'],
];

/** GB 11643-1999 check digit of the first 17 digits. */
export function idCheckDigit(first17: string): string {
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * weights[i];
  return '10X98765432'[sum % 11];
}

export interface PatientSeed {
  resource: Patient;
  gender: 'male' | 'female';
}

export function patient(rng: Rng, n: number, orgs: Institution[]): PatientSeed {
  const gender = rng.next() < 0.5 ? 'male' : 'female';
  const [areaCode, district] = rng.pick(DISTRICTS);
  const birth = new Date(Date.UTC(1940, 0, 1) + rng.int(0, 80 * 365) * 86_400_000);
  const birthDate = birth.toISOString().slice(0, 10);
  const seq = String(n % 1000).padStart(3, '0');
  const seqDigit = String((Number(seq[2]) & ~1) | (gender === 'male' ? 1 : 0));
  const first17 = `${areaCode}${birthDate.replaceAll('-', '')}${seq.slice(0, 2)}${seqDigit}`;
  const nationalId = `${first17}${idCheckDigit(first17)}`;
  const home = rng.pick(orgs);
  const family = rng.pick(SURNAMES);
  const given = rng.pick(GIVEN) + (rng.next() < 0.5 ? rng.pick(GIVEN) : '');
  return {
    gender,
    resource: {
      resourceType: 'Patient',
      identifier: [
        {
          use: 'official',
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'NI', display: 'National unique individual identifier' }], text: '居民身份证' },
          system: NATIONAL_ID_SYSTEM,
          value: nationalId,
        },
        { use: 'secondary', system: INSURANCE_SYSTEM, value: `GZ${String(100000000 + n * 7 + rng.int(0, 6)).padStart(12, '0')}` },
        {
          use: 'usual',
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }] },
          system: mrnSystem(home.code),
          value: String(rng.int(1_000_000, 9_999_999)),
        },
      ],
      active: true,
      name: [{ use: 'official', text: `${family}${given}`, family, given: [given] }],
      telecom: [{ system: 'phone', value: `13${rng.int(0, 9)}${String(rng.int(0, 99_999_999)).padStart(8, '0')}`, use: 'mobile' }],
      gender,
      birthDate,
      address: [{ use: 'home', city: '广州市', district, state: '广东省', postalCode: '510000', country: 'CN' }],
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Lab panels: LOINC code, Chinese name, UCUM unit, reference interval (adult, sex-specific where it matters)

interface Analyte {
  loinc: string;
  display: string;
  zh: string;
  unit: string;
  /** [low, high] reference interval; [male, female] when they differ. */
  range: [number, number] | { male: [number, number]; female: [number, number] };
  decimals: number;
}

export interface Panel {
  loinc: string;
  display: string;
  zh: string;
  /** National medical-insurance service item code (15 digits). */
  serviceItem: string;
  analytes: Analyte[];
}

export const PANELS: Panel[] = [
  {
    loinc: '58410-2',
    display: 'CBC panel - Blood by Automated count',
    zh: '血细胞分析',
    serviceItem: '002501010150000',
    analytes: [
      { loinc: '6690-2', display: 'Leukocytes [#/volume] in Blood by Automated count', zh: '白细胞计数', unit: '10*9/L', range: [3.5, 9.5], decimals: 2 },
      { loinc: '789-8', display: 'Erythrocytes [#/volume] in Blood by Automated count', zh: '红细胞计数', unit: '10*12/L', range: { male: [4.3, 5.8], female: [3.8, 5.1] }, decimals: 2 },
      { loinc: '718-7', display: 'Hemoglobin [Mass/volume] in Blood', zh: '血红蛋白', unit: 'g/L', range: { male: [130, 175], female: [115, 150] }, decimals: 0 },
      { loinc: '4544-3', display: 'Hematocrit [Volume Fraction] of Blood by Automated count', zh: '红细胞压积', unit: '%', range: { male: [40, 50], female: [35, 45] }, decimals: 1 },
      { loinc: '787-2', display: 'MCV [Entitic volume] by Automated count', zh: '平均红细胞体积', unit: 'fL', range: [82, 100], decimals: 1 },
      { loinc: '785-6', display: 'MCH [Entitic mass] by Automated count', zh: '平均红细胞血红蛋白量', unit: 'pg', range: [27, 34], decimals: 1 },
      { loinc: '786-4', display: 'MCHC [Mass/volume] by Automated count', zh: '平均红细胞血红蛋白浓度', unit: 'g/L', range: [316, 354], decimals: 0 },
      { loinc: '788-0', display: 'Erythrocyte distribution width [Ratio] by Automated count', zh: '红细胞分布宽度', unit: '%', range: [11.5, 14.5], decimals: 1 },
      { loinc: '777-3', display: 'Platelets [#/volume] in Blood by Automated count', zh: '血小板计数', unit: '10*9/L', range: [125, 350], decimals: 0 },
      { loinc: '32623-1', display: 'Platelet mean volume [Entitic volume] in Blood by Automated count', zh: '平均血小板体积', unit: 'fL', range: [7.4, 10.4], decimals: 1 },
      { loinc: '770-8', display: 'Neutrophils/100 leukocytes in Blood by Automated count', zh: '中性粒细胞百分比', unit: '%', range: [40, 75], decimals: 1 },
      { loinc: '736-9', display: 'Lymphocytes/100 leukocytes in Blood by Automated count', zh: '淋巴细胞百分比', unit: '%', range: [20, 50], decimals: 1 },
      { loinc: '5905-5', display: 'Monocytes/100 leukocytes in Blood by Automated count', zh: '单核细胞百分比', unit: '%', range: [3, 10], decimals: 1 },
      { loinc: '713-8', display: 'Eosinophils/100 leukocytes in Blood by Automated count', zh: '嗜酸性粒细胞百分比', unit: '%', range: [0.4, 8], decimals: 1 },
      { loinc: '706-2', display: 'Basophils/100 leukocytes in Blood by Automated count', zh: '嗜碱性粒细胞百分比', unit: '%', range: [0, 1], decimals: 1 },
    ],
  },
  {
    loinc: '24323-8',
    display: 'Comprehensive metabolic 2000 panel - Serum or Plasma',
    zh: '肝肾功能电解质',
    serviceItem: '002503010010000',
    analytes: [
      { loinc: '1742-6', display: 'Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma', zh: '丙氨酸氨基转移酶', unit: 'U/L', range: { male: [9, 50], female: [7, 40] }, decimals: 0 },
      { loinc: '1920-8', display: 'Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma', zh: '天门冬氨酸氨基转移酶', unit: 'U/L', range: { male: [15, 40], female: [13, 35] }, decimals: 0 },
      { loinc: '6768-6', display: 'Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma', zh: '碱性磷酸酶', unit: 'U/L', range: [45, 125], decimals: 0 },
      { loinc: '2324-2', display: 'Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma', zh: 'γ-谷氨酰转移酶', unit: 'U/L', range: { male: [10, 60], female: [7, 45] }, decimals: 0 },
      { loinc: '14631-6', display: 'Bilirubin.total [Moles/volume] in Serum or Plasma', zh: '总胆红素', unit: 'umol/L', range: [3.4, 20.5], decimals: 1 },
      { loinc: '14629-0', display: 'Bilirubin.direct [Moles/volume] in Serum or Plasma', zh: '直接胆红素', unit: 'umol/L', range: [0, 6.8], decimals: 1 },
      { loinc: '2885-2', display: 'Protein [Mass/volume] in Serum or Plasma', zh: '总蛋白', unit: 'g/L', range: [65, 85], decimals: 1 },
      { loinc: '1751-7', display: 'Albumin [Mass/volume] in Serum or Plasma', zh: '白蛋白', unit: 'g/L', range: [40, 55], decimals: 1 },
      { loinc: '14682-9', display: 'Creatinine [Moles/volume] in Serum or Plasma', zh: '肌酐', unit: 'umol/L', range: { male: [57, 111], female: [41, 81] }, decimals: 0 },
      { loinc: '22664-7', display: 'Urea [Moles/volume] in Serum or Plasma', zh: '尿素', unit: 'mmol/L', range: [3.1, 8.0], decimals: 2 },
      { loinc: '14933-6', display: 'Urate [Moles/volume] in Serum or Plasma', zh: '尿酸', unit: 'umol/L', range: { male: [208, 428], female: [155, 357] }, decimals: 0 },
      { loinc: '14749-6', display: 'Glucose [Moles/volume] in Serum or Plasma', zh: '葡萄糖', unit: 'mmol/L', range: [3.9, 6.1], decimals: 2 },
      { loinc: '2823-3', display: 'Potassium [Moles/volume] in Serum or Plasma', zh: '钾', unit: 'mmol/L', range: [3.5, 5.3], decimals: 2 },
      { loinc: '2951-2', display: 'Sodium [Moles/volume] in Serum or Plasma', zh: '钠', unit: 'mmol/L', range: [137, 147], decimals: 1 },
      { loinc: '2075-0', display: 'Chloride [Moles/volume] in Serum or Plasma', zh: '氯', unit: 'mmol/L', range: [99, 110], decimals: 1 },
    ],
  },
  {
    loinc: '57698-3',
    display: 'Lipid panel with direct LDL - Serum or Plasma',
    zh: '血脂、凝血与糖代谢',
    serviceItem: '002503020010000',
    analytes: [
      { loinc: '14647-2', display: 'Cholesterol [Moles/volume] in Serum or Plasma', zh: '总胆固醇', unit: 'mmol/L', range: [2.8, 5.2], decimals: 2 },
      { loinc: '14927-8', display: 'Triglyceride [Moles/volume] in Serum or Plasma', zh: '甘油三酯', unit: 'mmol/L', range: [0.45, 1.7], decimals: 2 },
      { loinc: '14646-4', display: 'Cholesterol in HDL [Moles/volume] in Serum or Plasma', zh: '高密度脂蛋白胆固醇', unit: 'mmol/L', range: [1.0, 1.9], decimals: 2 },
      { loinc: '22748-8', display: 'Cholesterol in LDL [Moles/volume] in Serum or Plasma', zh: '低密度脂蛋白胆固醇', unit: 'mmol/L', range: [1.5, 3.4], decimals: 2 },
      { loinc: '1869-7', display: 'Apolipoprotein A-I [Mass/volume] in Serum or Plasma', zh: '载脂蛋白A1', unit: 'g/L', range: [1.2, 1.6], decimals: 2 },
      { loinc: '1884-6', display: 'Apolipoprotein B [Mass/volume] in Serum or Plasma', zh: '载脂蛋白B', unit: 'g/L', range: [0.8, 1.1], decimals: 2 },
      { loinc: '5902-2', display: 'Prothrombin time (PT)', zh: '凝血酶原时间', unit: 's', range: [11, 14], decimals: 1 },
      { loinc: '6301-6', display: 'INR in Platelet poor plasma by Coagulation assay', zh: '国际标准化比值', unit: '{INR}', range: [0.8, 1.2], decimals: 2 },
      { loinc: '3173-2', display: 'aPTT in Blood by Coagulation assay', zh: '活化部分凝血活酶时间', unit: 's', range: [25, 35], decimals: 1 },
      { loinc: '3255-7', display: 'Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay', zh: '纤维蛋白原', unit: 'g/L', range: [2, 4], decimals: 2 },
      { loinc: '3243-3', display: 'Thrombin time', zh: '凝血酶时间', unit: 's', range: [14, 21], decimals: 1 },
      { loinc: '48065-7', display: 'Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma', zh: 'D-二聚体', unit: 'mg/L', range: [0, 0.5], decimals: 2 },
      { loinc: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', zh: '糖化血红蛋白', unit: '%', range: [4, 6], decimals: 1 },
      { loinc: '14771-0', display: 'Fasting glucose [Moles/volume] in Serum or Plasma', zh: '空腹血糖', unit: 'mmol/L', range: [3.9, 6.1], decimals: 2 },
      { loinc: '2276-4', display: 'Ferritin [Mass/volume] in Serum or Plasma', zh: '铁蛋白', unit: 'ug/L', range: { male: [30, 400], female: [13, 150] }, decimals: 1 },
    ],
  },
];

/** Every analyte code, for the search scenario. */
export const ANALYTE_CODES: string[] = PANELS.flatMap((p) => p.analytes.map((a) => a.loinc));

// ---------------------------------------------------------------------------------------------------------
// Reports

const INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const INTERPRETATION_DISPLAY: Record<string, string> = { N: 'Normal', H: 'High', L: 'Low', HH: 'Critical high', LL: 'Critical low' };
const DAY = 86_400_000;

export interface ReportRefs {
  patientId: string;
  gender: 'male' | 'female';
  org: { id: string; code: string; name: string };
}

export interface GeneratedReport {
  bundle: Bundle;
  /** What a search for one of its results can use: the analyte codes and the effective instant. */
  patientId: string;
  codes: string[];
  effective: string;
}

/** The time window the reports' effective dates are spread over: two years up to `end`. */
export interface TimeWindow {
  end: number;
  days: number;
}

export function defaultWindow(now = Date.now()): TimeWindow {
  return { end: Math.floor(now / DAY) * DAY, days: 730 };
}

/** ISO dateTime in China Standard Time (+08:00). */
export function cst(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, '+08:00');
}

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

/** One lab report as a transaction Bundle: the DiagnosticReport and its Observations, linked by urn:uuid. */
export function labReport(rng: Rng, refs: ReportRefs, window: TimeWindow, panel: Panel = rng.pick(PANELS)): GeneratedReport {
  const collected = window.end - rng.int(1, window.days) * DAY + rng.int(7 * 60, 11 * 60) * 60_000 - 8 * 3_600_000; // 07:00–11:00 CST
  const issuedMs = collected + rng.int(40, 240) * 60_000;
  const effective = cst(collected);
  const issued = cst(issuedMs);
  const subject = { reference: `Patient/${refs.patientId}` };
  const performer = [{ reference: `Organization/${refs.org.id}`, display: refs.org.name }];
  const entries: BundleEntry[] = [];
  const resultRefs: { reference: string }[] = [];
  // a patient with a condition tends to be off on several items of a panel
  const sick = rng.next() < 0.2 ? 1.6 : 0.35;
  for (const a of panel.analytes) {
    const [low, high] = Array.isArray(a.range) ? a.range : a.range[refs.gender];
    const mid = (low + high) / 2;
    const half = (high - low) / 2 || 1;
    const value = Math.max(0, round(mid + rng.normal() * half * (0.55 + sick * rng.next()), a.decimals));
    let flag = 'N';
    if (value > high) flag = value > high + 2 * half ? 'HH' : 'H';
    else if (value < low) flag = value < low - half && low > 0 ? 'LL' : 'L';
    const fullUrl = `urn:uuid:${randomUUID()}`;
    resultRefs.push({ reference: fullUrl });
    const quantity = (v: number) => ({ value: v, unit: a.unit.replace('10*', '10^'), system: UCUM, code: a.unit });
    const obs: Observation = {
      resourceType: 'Observation',
      status: 'final',
      category: [
        {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory', display: 'Laboratory' }],
        },
      ],
      code: { coding: [{ system: LOINC, code: a.loinc, display: a.display }], text: a.zh },
      subject,
      effectiveDateTime: effective,
      issued,
      performer,
      valueQuantity: quantity(value),
      interpretation: [{ coding: [{ system: INTERPRETATION, code: flag, display: INTERPRETATION_DISPLAY[flag] }] }],
      referenceRange: [{ low: quantity(low), high: quantity(high), text: `${low}-${high}` }],
    };
    entries.push({ fullUrl, resource: obs, request: { method: 'POST', url: 'Observation' } });
  }
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    identifier: [{ system: reportNoSystem(refs.org.code), value: `${effective.slice(0, 10).replaceAll('-', '')}${rng.int(100000, 999999)}` }],
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB', display: 'Laboratory' }] }],
    code: {
      coding: [
        { system: LOINC, code: panel.loinc, display: panel.display },
        { system: SERVICE_ITEM_SYSTEM, code: panel.serviceItem, display: panel.zh },
      ],
      text: panel.zh,
    },
    subject,
    effectiveDateTime: effective,
    issued,
    performer,
    result: resultRefs,
  };
  entries.unshift({ fullUrl: `urn:uuid:${randomUUID()}`, resource: report, request: { method: 'POST', url: 'DiagnosticReport' } });
  return {
    bundle: { resourceType: 'Bundle', type: 'transaction', entry: entries },
    patientId: refs.patientId,
    codes: panel.analytes.map((a) => a.loinc),
    effective,
  };
}

/** A transaction Bundle creating the given resources (no references between them). */
export function createBundle(resources: (Organization | Patient | Observation)[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((resource) => ({ fullUrl: `urn:uuid:${randomUUID()}`, resource, request: { method: 'POST', url: resource.resourceType } })),
  };
}

/** A single Observation for the create scenario (one result line of a random panel). */
export function singleObservation(rng: Rng, refs: ReportRefs, window: TimeWindow): Observation {
  const r = labReport(rng, refs, window);
  const entry = r.bundle.entry![1 + rng.int(0, r.bundle.entry!.length - 2)];
  return entry.resource as Observation;
}
