/**
 * Builds the platform's terminology resources (FHIR R4 JSON) from the catalogue rows: the catalogue
 * CodeSystem, the national and legacy code systems, the legacy → national → platform ConceptMap, the
 * catalogue ValueSets (whole, per kind, per field, per category) and the not-recognised reason codes.
 * Deterministic: the same rows and options give the same resources, key for key.
 */
import type {
  CodeSystem,
  CodeSystemConcept,
  CodeSystemConceptProperty,
  CodeSystemProperty,
  ConceptMap,
  ConceptMapGroup,
  ConceptMapGroupElement,
  ValueSet,
  ValueSetComposeIncludeFilter,
} from '@medplum/fhirtypes';
import {
  CATALOGUE_SYSTEM,
  CATALOGUE_VALUESET,
  CONCEPT_PROPERTIES,
  DECISION_SYSTEM,
  DESIGNATION_USE_SYSTEM,
  DICTIONARY_STATUS_SYSTEM,
  LEGACY_MAP_URL,
  LEGACY_SYSTEM,
  NATIONAL_SYSTEM,
  PLATFORM_ACTIVITY_SYSTEM,
  REASON_SYSTEM,
  REASON_VALUESET,
  RECORD_KIND_SYSTEM,
  valueSetUrl,
} from './canonical.ts';
import { categoryCode, categoryToken, fieldCode, KINDS, type CatalogueRow, type Kind } from './catalogue-source.ts';

export interface BuildOptions {
  /** Version of every generated resource (the catalogue edition). */
  version: string;
  /** Date of the edition (CodeSystem.date etc.) and start of each item's effective period (YYYY-MM-DD). */
  effectiveFrom: string;
  /** Recognition scope of the items (the region in which a result must be recognised). */
  scope: string;
  /** The mutual-recognition mark printed on reports of the region. */
  hrLabel: string;
  /** Where the edition comes from, for the descriptions (default: the generator and recognition-items.csv). */
  source?: string;
}

export type TerminologyResource = CodeSystem | ValueSet | ConceptMap;

export interface GeneratedFile {
  file: string;
  resource: TerminologyResource;
}

/**
 * Reason codes for not recognising a result (不互认), as used by a live platform
 * (terminology/source/README.md). 98 and 99 are excluded from the "not recognised" statistics; 08 needs text.
 */
export const REASONS: { code: string; zh: string; en: string; excluded?: boolean; text?: number }[] = [
  { code: '01', zh: '病情变化', en: 'Condition changed' },
  { code: '02', zh: '检查检验结果变化快', en: 'Fast-changing result' },
  { code: '03', zh: '重大医疗措施前（手术、输血等）', en: 'Before a major intervention (surgery, transfusion)' },
  { code: '04', zh: '急诊、急救或危重症', en: 'Emergency or critical illness' },
  { code: '05', zh: '司法、伤残、退休、劳动仲裁等鉴定', en: 'Forensic, disability, retirement or labour-arbitration appraisal' },
  { code: '06', zh: '依法须由具备资质的实验室检测', en: 'The item legally needs a qualified laboratory' },
  { code: '07', zh: '医师判断确需复查', en: 'Physician judges a re-test necessary' },
  { code: '08', zh: '其他（须填写原因，不超过200字）', en: 'Other (free text, at most 200 characters)', text: 200 },
  { code: '98', zh: '外院影像资料无法调阅', en: 'External images not available', excluded: true },
  { code: '99', zh: '需连续动态监测', en: 'Serial monitoring needed', excluded: true },
];

const PUBLISHER = 'Huren 互认平台';
const ZH = 'zh-CN';

const catalogueProperty = (code: string, type: CodeSystemProperty['type'], description: string, uri = `${CATALOGUE_SYSTEM}#${code}`): CodeSystemProperty => ({
  code,
  uri,
  description,
  type,
});

const CATALOGUE_PROPERTIES: CodeSystemProperty[] = [
  catalogueProperty('level', 'code', 'Level of the concept in the catalogue hierarchy: kind | field | category | item. Only items are orderable and appear in the catalogue ValueSets.'),
  catalogueProperty('notSelectable', 'boolean', 'True for the grouping concepts (kind, field, category).', `${CONCEPT_PROPERTIES}#notSelectable`),
  catalogueProperty('status', 'code', 'Status of the item: active | retired.', `${CONCEPT_PROPERTIES}#status`),
  catalogueProperty('kind', 'string', '检验 (laboratory test) or 检查 (examination).'),
  catalogueProperty('field', 'string', 'The lab field or exam modality of Article 2 of the 2022 Measures (e.g. 血液学, 超声).'),
  catalogueProperty('category', 'string', 'The catalogue category within the field (e.g. 血常规).'),
  catalogueProperty('windowDays', 'integer', 'Recognition validity window in days; absent when the item is not time-limited or no value is known.'),
  catalogueProperty('windowSource', 'code', 'Source of the window: S = published by a hospital notice; I = a proposal to be confirmed.'),
  catalogueProperty('scope', 'string', 'Recognition scope: the region within which a qualified result must be recognised.'),
  catalogueProperty('hrLabel', 'string', 'The mutual-recognition mark carried by qualified reports (e.g. 粤HR).'),
  catalogueProperty('nationalCode', 'code', `National medical-insurance service code (15 digits), in ${NATIONAL_SYSTEM}.`),
  catalogueProperty('legacyCode', 'code', `Old price code (9 digits, or an 11-digit local variant), in ${LEGACY_SYSTEM}.`),
  catalogueProperty('loinc', 'code', 'A LOINC code (http://loinc.org) suggested for the item; a hint, to be checked against a LOINC release before use.'),
  catalogueProperty('onList', 'string', 'Published lists the item appears on: J = 京津冀鲁 60-item list, Q = Qinghai list, 京津冀2017.'),
  catalogueProperty('effectiveFrom', 'dateTime', 'Start of the period in which the item is in the catalogue.'),
  catalogueProperty('effectiveTo', 'dateTime', 'End of the period in which the item is in the catalogue (absent: open).'),
  catalogueProperty('note', 'string', 'Remark on the source of the facts (e.g. a code inferred from the national pattern).'),
  catalogueProperty('price', 'decimal', 'Price of one item in 元 (CNY), as the catalogue file gives it; used for the estimated saving of recognised items. Absent when unknown.'),
];

const prop = {
  code: (code: string, value: string): CodeSystemConceptProperty => ({ code, valueCode: value }),
  str: (code: string, value: string): CodeSystemConceptProperty => ({ code, valueString: value }),
  int: (code: string, value: number): CodeSystemConceptProperty => ({ code, valueInteger: value }),
  bool: (code: string, value: boolean): CodeSystemConceptProperty => ({ code, valueBoolean: value }),
  date: (code: string, value: string): CodeSystemConceptProperty => ({ code, valueDateTime: value }),
  dec: (code: string, value: number): CodeSystemConceptProperty => ({ code, valueDecimal: value }),
};

export function buildTerminology(rows: CatalogueRow[], options: BuildOptions): GeneratedFile[] {
  const files: GeneratedFile[] = [];
  const add = (resource: TerminologyResource) => files.push({ file: `${resource.resourceType}-${resource.id}.json`, resource });
  add(catalogueCodeSystem(rows, options));
  add(sourceCodeSystem('national', rows, options));
  add(sourceCodeSystem('legacy', rows, options));
  add(conceptMap(rows, options));
  for (const vs of catalogueValueSets(rows, options)) add(vs);
  add(reasonCodeSystem(options));
  add(reasonValueSet(options));
  add(designationUseCodeSystem(options));
  add(platformActivityCodeSystem(options));
  add(dictionaryStatusCodeSystem(options));
  add(recordKindCodeSystem(options));
  add(decisionCodeSystem(options));
  const ids = new Set<string>();
  for (const f of files) {
    if (ids.has(f.file)) throw new Error(`two generated resources share the file name ${f.file}`);
    ids.add(f.file);
  }
  return files.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

function header<T extends TerminologyResource['resourceType']>(resourceType: T, id: string, url: string, name: string, title: string, description: string, options: BuildOptions) {
  return {
    resourceType,
    id,
    language: ZH,
    url,
    version: options.version,
    name,
    title,
    status: 'active' as const,
    experimental: false,
    date: options.effectiveFrom,
    publisher: PUBLISHER,
    description,
  };
}

function catalogueCodeSystem(rows: CatalogueRow[], options: BuildOptions): CodeSystem {
  const kinds = new Map<Kind, CodeSystemConcept>();
  const fields = new Map<string, CodeSystemConcept>();
  const categories = new Map<string, CodeSystemConcept>();
  const seen = new Map<string, string>();
  const claim = (code: string, what: string) => {
    const other = seen.get(code);
    if (other !== undefined && other !== what) throw new Error(`code ${code} derived for both ${other} and ${what}`);
    seen.set(code, what);
  };
  let count = 0;
  for (const row of rows) {
    let kind = kinds.get(row.kind);
    if (!kind) {
      kind = {
        code: KINDS[row.kind].group,
        display: row.kind,
        designation: [{ language: 'en', value: KINDS[row.kind].en }],
        property: [prop.code('level', 'kind'), prop.bool('notSelectable', true)],
        concept: [],
      };
      kinds.set(row.kind, kind);
      count++;
    }
    const fCode = fieldCode(row.kind, row.field);
    let field = fields.get(fCode);
    if (!field) {
      claim(fCode, `field ${row.kind}/${row.field}`);
      field = {
        code: fCode,
        display: row.field,
        property: [prop.code('level', 'field'), prop.bool('notSelectable', true), prop.str('kind', row.kind)],
        concept: [],
      };
      fields.set(fCode, field);
      kind.concept!.push(field);
      count++;
    }
    const cCode = categoryCode(row.kind, row.field, row.category);
    let category = categories.get(cCode);
    if (!category) {
      claim(cCode, `category ${row.kind}/${row.field}/${row.category}`);
      category = {
        code: cCode,
        display: row.category,
        property: [prop.code('level', 'category'), prop.bool('notSelectable', true), prop.str('kind', row.kind), prop.str('field', row.field)],
        concept: [],
      };
      categories.set(cCode, category);
      field.concept!.push(category);
      count++;
    }
    claim(row.code, `item ${row.kind}/${row.item}`);
    category.concept!.push(itemConcept(row, options));
    count++;
  }
  return {
    ...header(
      'CodeSystem',
      'recognition-catalogue',
      CATALOGUE_SYSTEM,
      'RecognitionCatalogue',
      '检查检验结果互认项目目录（平台编码）',
      'The mutual-recognition catalogue of the Guangzhou platform: every recognisable lab test (检验) and ' +
        'examination (检查) with its platform code, grouped by kind, field (Article 2 of 国卫医发〔2022〕6号) and ' +
        'category, with its validity window, recognition scope, HR mark, and its national (15-digit) and legacy ' +
        '(9/11-digit) codes where known. ' +
        (options.source ?? 'Generated from recognition-items.csv by scripts/generate-terminology.ts; do not edit by hand.'),
      options
    ),
    caseSensitive: true,
    valueSet: CATALOGUE_VALUESET,
    hierarchyMeaning: 'classified-with',
    compositional: false,
    versionNeeded: false,
    content: 'complete',
    count,
    filter: [
      { code: 'level', operator: ['=', 'in'], value: 'kind | field | category | item' },
      { code: 'kind', operator: ['=', 'in'], value: '检验 | 检查' },
      { code: 'field', operator: ['=', 'in'], value: 'a field name, e.g. 超声' },
      { code: 'category', operator: ['=', 'in'], value: 'a category name, e.g. 血常规' },
      { code: 'nationalCode', operator: ['=', 'in', 'exists'], value: 'a 15-digit code, or true/false for exists' },
      { code: 'legacyCode', operator: ['=', 'in', 'exists'], value: 'a 9/11-digit code, or true/false for exists' },
      { code: 'concept', operator: ['is-a', 'descendent-of', 'is-not-a'], value: 'a code of this system' },
    ],
    property: CATALOGUE_PROPERTIES,
    concept: [...kinds.values()],
  };
}

function itemConcept(row: CatalogueRow, options: BuildOptions): CodeSystemConcept {
  const property: CodeSystemConceptProperty[] = [
    prop.code('level', 'item'),
    prop.code('status', row.status ?? 'active'),
    prop.str('kind', row.kind),
    prop.str('field', row.field),
    prop.str('category', row.category),
  ];
  if (row.windowDays !== undefined) property.push(prop.int('windowDays', row.windowDays));
  if (row.windowSource) property.push(prop.code('windowSource', row.windowSource));
  property.push(prop.str('scope', options.scope), prop.str('hrLabel', options.hrLabel));
  if (row.nationalCode) property.push(prop.code('nationalCode', row.nationalCode));
  if (row.legacyCode) property.push(prop.code('legacyCode', row.legacyCode));
  if (row.loinc) property.push(prop.code('loinc', row.loinc));
  for (const list of row.onLists) property.push(prop.str('onList', list));
  property.push(prop.date('effectiveFrom', row.effectiveFrom ?? options.effectiveFrom));
  if (row.effectiveTo) property.push(prop.date('effectiveTo', row.effectiveTo));
  if (row.note) property.push(prop.str('note', row.note));
  if (row.price !== undefined) property.push(prop.dec('price', row.price));
  return {
    code: row.code,
    display: row.item,
    ...(row.abbr ? { designation: [{ use: { system: DESIGNATION_USE_SYSTEM, code: 'abbreviation', display: '缩写' }, value: row.abbr }] } : {}),
    property,
  };
}

function sourceCodeSystem(which: 'national' | 'legacy', rows: CatalogueRow[], options: BuildOptions): CodeSystem {
  const codes = new Map<string, string>();
  for (const row of rows) {
    const code = which === 'national' ? row.nationalCode : row.legacyCode;
    if (code && !codes.has(code)) codes.set(code, row.item);
  }
  const concept = [...codes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([code, display]) => ({ code, display }));
  const national = which === 'national';
  return {
    ...header(
      'CodeSystem',
      national ? 'nhsa-service-item' : 'legacy-price-item',
      national ? NATIONAL_SYSTEM : LEGACY_SYSTEM,
      national ? 'NhsaServiceItem' : 'LegacyPriceItem',
      national ? '国家医保医疗服务项目代码（互认目录涉及部分）' : '旧版医疗服务价格项目编码（互认目录涉及部分）',
      national
        ? 'The 15-digit national medical-insurance service item codes (国家医保 医疗服务项目代码) of the catalogue items for which a code was found. A fragment: only the codes the catalogue uses.'
        : 'The old 9-digit price item codes (and 11-digit local variants) of the catalogue items for which one was found. A fragment: only the codes the catalogue uses.',
      options
    ),
    caseSensitive: true,
    content: 'fragment',
    count: concept.length,
    concept,
  };
}

function conceptMap(rows: CatalogueRow[], options: BuildOptions): ConceptMap {
  const group = (source: string, target: string, pick: (r: CatalogueRow) => [string | undefined, string | undefined]): ConceptMapGroup => {
    const elements = new Map<string, ConceptMapGroupElement>();
    // a retired item keeps its mappings (old records still carry its codes) unless an active item has
    // taken over the same source code
    const activeSources = new Set<string>();
    for (const row of rows) {
      const [s, t] = pick(row);
      if (s && t && row.status !== 'retired') activeSources.add(s);
    }
    const mapped = rows.filter((row) => {
      const [s, t] = pick(row);
      return !!s && !!t && (row.status !== 'retired' || !activeSources.has(s));
    });
    const targetsOf = new Map<string, number>();
    for (const row of mapped) {
      const [s] = pick(row);
      targetsOf.set(s as string, (targetsOf.get(s as string) ?? 0) + 1);
    }
    for (const row of mapped) {
      const [s, t] = pick(row) as [string, string];
      let el = elements.get(s);
      if (!el) {
        el = { code: s, display: row.item, target: [] };
        elements.set(s, el);
      }
      el.target!.push({
        code: t,
        display: row.item,
        // one source code for several items: each item is narrower than the code it comes from
        equivalence: (targetsOf.get(s) ?? 0) > 1 ? 'narrower' : 'equivalent',
        ...(row.note ? { comment: row.note } : {}),
      });
    }
    const element = [...elements.values()].sort((a, b) => (a.code! < b.code! ? -1 : a.code! > b.code! ? 1 : 0));
    return { source, target, element };
  };
  return {
    ...header(
      'ConceptMap',
      'legacy-national-platform',
      LEGACY_MAP_URL,
      'LegacyNationalPlatform',
      '旧版物价编码 → 国家医保编码 → 互认平台编码',
      'Maps the old price codes to the national medical-insurance service codes, and both to the platform codes of the recognition catalogue (编码升级). ' +
        (options.source ?? 'Generated from recognition-items.csv.'),
      options
    ),
    group: [
      group(LEGACY_SYSTEM, NATIONAL_SYSTEM, (r) => [r.legacyCode, r.nationalCode]),
      group(NATIONAL_SYSTEM, CATALOGUE_SYSTEM, (r) => [r.nationalCode, r.code]),
      group(LEGACY_SYSTEM, CATALOGUE_SYSTEM, (r) => [r.legacyCode, r.code]),
    ].filter((g) => g.element.length > 0),
  };
}

function catalogueValueSets(rows: CatalogueRow[], options: BuildOptions): ValueSet[] {
  const eq = (property: string, value: string): ValueSetComposeIncludeFilter => ({ property, op: '=', value });
  const make = (id: string, name: string, title: string, description: string, filter: ValueSetComposeIncludeFilter[]): ValueSet => ({
    ...header('ValueSet', id, valueSetUrl(id), name, title, description, options),
    // pinned to the catalogue edition, so that an earlier version of the set expands as it did; retired
    // items stay in the code system but leave the value sets
    compose: { inactive: false, include: [{ system: CATALOGUE_SYSTEM, version: options.version, filter: [eq('level', 'item'), ...filter] }] },
  });
  const out: ValueSet[] = [
    make('recognition-catalogue', 'RecognitionCatalogue', '互认项目目录（全部）', 'Every item of the recognition catalogue.', []),
  ];
  const kinds = new Set<Kind>();
  const fields = new Map<string, CatalogueRow>();
  const categories = new Map<string, CatalogueRow>();
  for (const row of rows) {
    if (row.status === 'retired') continue; // a set of retired items only is not published
    kinds.add(row.kind);
    const f = fieldCode(row.kind, row.field).slice(2);
    if (!fields.has(f)) fields.set(f, row);
    const c = categoryToken(row.kind, row.category);
    if (!categories.has(c)) categories.set(c, row);
  }
  for (const kind of kinds) {
    const k = KINDS[kind];
    out.push(make(`recognition-${k.valueSet}`, `RecognitionCatalogue${k.group[0]}${k.group.slice(1).toLowerCase()}`, `互认项目目录：${kind}`, `The ${k.en} items of the recognition catalogue (${kind}).`, [eq('kind', kind)]));
  }
  for (const [token, row] of fields) {
    out.push(
      make(`recognition-field-${token}`, `RecognitionField_${token}`, `互认项目目录：${row.kind} › ${row.field}`, `The catalogue items of the field ${row.field} (${row.kind}).`, [
        eq('kind', row.kind),
        eq('field', row.field),
      ])
    );
  }
  for (const [token, row] of categories) {
    out.push(
      make(`recognition-category-${token}`, `RecognitionCategory_${token}`, `互认项目目录：分类 › ${row.category}`, `The catalogue items of the category ${row.category} (${row.kind}), whatever their field.`, [
        eq('kind', row.kind),
        eq('category', row.category),
      ])
    );
  }
  return out;
}

function reasonCodeSystem(options: BuildOptions): CodeSystem {
  return {
    ...header(
      'CodeSystem',
      'not-recognised-reason',
      REASON_SYSTEM,
      'NotRecognisedReason',
      '不予互认原因',
      'Why a doctor did not recognise a result and ordered a re-test (不互认原因). 98 and 99 are not counted in the "not recognised" statistics; 08 needs a free-text reason of at most 200 characters.',
      options
    ),
    caseSensitive: true,
    valueSet: REASON_VALUESET,
    content: 'complete',
    count: REASONS.length,
    property: [
      { code: 'excludedFromStatistics', uri: `${REASON_SYSTEM}#excludedFromStatistics`, description: 'True when a decision with this reason is not counted as "not recognised" in the statistics.', type: 'boolean' },
      { code: 'textRequired', uri: `${REASON_SYSTEM}#textRequired`, description: 'True when the doctor must give the reason as free text.', type: 'boolean' },
      { code: 'maxTextLength', uri: `${REASON_SYSTEM}#maxTextLength`, description: 'Largest number of characters of the free-text reason.', type: 'integer' },
    ],
    concept: REASONS.map((r) => ({
      code: r.code,
      display: r.zh,
      designation: [{ language: 'en', value: r.en }],
      property: [
        prop.bool('excludedFromStatistics', r.excluded === true),
        prop.bool('textRequired', r.text !== undefined),
        ...(r.text !== undefined ? [prop.int('maxTextLength', r.text)] : []),
      ],
    })),
  };
}

function reasonValueSet(options: BuildOptions): ValueSet {
  return {
    ...header('ValueSet', 'not-recognised-reason', REASON_VALUESET, 'NotRecognisedReason', '不予互认原因', 'Every not-recognised reason code.', options),
    compose: { include: [{ system: REASON_SYSTEM }] },
  };
}

/** The kinds of recognition record (互认记录) the platform writes as DetectedIssue.code. */
export const RECORD_KINDS: { code: string; zh: string; en: string; definition: string }[] = [
  { code: 'encounter-reminder', zh: '就诊提醒', en: 'Encounter reminder', definition: 'Written by each recognition check at an encounter: the recognisable results the patient has (DetectedIssue.implicated).' },
  { code: 'duplicate-order-reminder', zh: '重复检查提醒', en: 'Duplicate-order reminder', definition: 'Written by each duplicate check at order saving: the recognisable results that cover the ordered items (DetectedIssue.implicated).' },
];

/** The doctor's decision on a reminder (DetectedIssue.mitigation.action). */
export const DECISIONS: { code: string; zh: string; en: string; definition: string }[] = [
  { code: 'recognised', zh: '已互认', en: 'Recognised', definition: 'The doctor accepted the earlier result; no re-test.' },
  { code: 'not-recognised', zh: '不予互认', en: 'Not recognised', definition: `The doctor ordered a re-test; the action also carries the reason code from ${REASON_SYSTEM}.` },
];

function smallCodeSystem(id: string, url: string, name: string, title: string, description: string, concepts: { code: string; zh: string; en: string; definition: string }[], options: BuildOptions): CodeSystem {
  return {
    ...header('CodeSystem', id, url, name, title, description, options),
    caseSensitive: true,
    content: 'complete',
    count: concepts.length,
    concept: concepts.map((c) => ({ code: c.code, display: c.zh, definition: c.definition, designation: [{ language: 'en', value: c.en }] })),
  };
}

function recordKindCodeSystem(options: BuildOptions): CodeSystem {
  return smallCodeSystem(
    'recognition-record-kind',
    RECORD_KIND_SYSTEM,
    'RecognitionRecordKind',
    '互认记录类型',
    'Kinds of recognition record (互认记录, DetectedIssue.code): the encounter reminder and the duplicate-order reminder.',
    RECORD_KINDS,
    options
  );
}

function decisionCodeSystem(options: BuildOptions): CodeSystem {
  return smallCodeSystem(
    'recognition-decision',
    DECISION_SYSTEM,
    'RecognitionDecision',
    '互认决定',
    "The doctor's decision on a recognisable result (DetectedIssue.mitigation.action): recognised, or not recognised with a not-recognised reason code.",
    DECISIONS,
    options
  );
}

/** What the platform itself does to records, for Provenance.activity (编码升级, 目录导入). */
export const PLATFORM_ACTIVITIES: { code: string; zh: string; en: string; definition: string }[] = [
  { code: 'code-upgrade', zh: '编码升级', en: 'Code upgrade', definition: 'Legacy price codes of a stored record completed with the national and platform codes (the original coding kept).' },
  { code: 'catalogue-import', zh: '互认目录导入', en: 'Catalogue import', definition: 'A new edition of the recognition catalogue imported from an official catalogue file.' },
];

function platformActivityCodeSystem(options: BuildOptions): CodeSystem {
  return smallCodeSystem('platform-activity', PLATFORM_ACTIVITY_SYSTEM, 'PlatformActivity', '平台操作', 'Activities the platform performs on records (Provenance.activity).', PLATFORM_ACTIVITIES, options);
}

/** Review status of an entry of an institution's dictionary map (字典数据质控). */
export const DICTIONARY_STATUSES: { code: string; zh: string; en: string; definition: string }[] = [
  { code: 'pending', zh: '待审核', en: 'Pending review', definition: 'New, or changed by an upload of the map: waits for review.' },
  { code: 'approved', zh: '已通过', en: 'Approved', definition: 'Reviewed and accepted: the local code stands for the catalogue item it maps to (or, without a target, is confirmed not to be in the catalogue).' },
  { code: 'rejected', zh: '已驳回', en: 'Rejected', definition: 'Reviewed and refused, with a comment: the institution must correct the mapping.' },
  { code: 'retired', zh: '已停用', en: 'Retired', definition: 'No longer in use: withdrawn by a reviewer, or no longer listed by the uploaded map.' },
];

function dictionaryStatusCodeSystem(options: BuildOptions): CodeSystem {
  return smallCodeSystem('dictionary-entry-status', DICTIONARY_STATUS_SYSTEM, 'DictionaryEntryStatus', '字典映射审核状态', 'Review status of an entry of an institution\'s map from its local item dictionary to the recognition catalogue.', DICTIONARY_STATUSES, options);
}

function designationUseCodeSystem(options: BuildOptions): CodeSystem {
  return {
    ...header('CodeSystem', 'designation-use', DESIGNATION_USE_SYSTEM, 'DesignationUse', '术语名称用途', 'Uses of the additional names (designations) of the platform concepts.', options),
    caseSensitive: true,
    content: 'complete',
    count: 1,
    concept: [{ code: 'abbreviation', display: '缩写', designation: [{ language: 'en', value: 'Abbreviation' }] }],
  };
}
