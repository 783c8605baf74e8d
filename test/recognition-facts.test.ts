/**
 * The pure parts of the recognition service: the catalogue view (how codes map to items, how categories are
 * named), the institution facts read from Organization extensions, and the items of a report.
 */
import test from 'ava';
import type { DiagnosticReport, Observation, Organization } from '@medplum/fhirtypes';
import { readTerminologyDir, terminology } from '../server/terminology/load.ts';
import { CatalogueView, currentCatalogue } from '../server/recognition/catalogue.ts';
import { cityOfDistrict, instant, institutionOf, isAbnormal, isCritical, itemsOfReport } from '../server/recognition/facts.ts';
import { CATALOGUE, DIVISION, EXT_DISTRICT, EXT_QC, ITEM, LEGACY, LOINC, NATIONAL } from './helpers/recognition-data.ts';

test.before(() => {
  terminology.load(readTerminologyDir());
});

test('codes map to catalogue items: platform, national, legacy, LOINC; the platform systems are strict', (t) => {
  const c = currentCatalogue();
  const codes = (system: string, code: string) => {
    const r = c.resolve({ system, code });
    return 'items' in r ? r.items.map((i) => i.code) : `invalid: ${r.invalid}`;
  };
  t.deepEqual(codes(CATALOGUE, ITEM.potassium), [ITEM.potassium]);
  t.deepEqual(codes(NATIONAL, '002501010150000'), [ITEM.cbc]);
  t.deepEqual(codes(LEGACY, '250101015'), [ITEM.cbc]);
  t.deepEqual(codes(LEGACY, '210300001'), [ITEM.ct]);
  t.deepEqual(codes(LOINC, '2823-3'), [ITEM.potassium]);
  t.deepEqual(codes(NATIONAL, '002501010159999'), [], 'a well-formed national code outside the catalogue maps to nothing');
  t.deepEqual(codes('https://his.example/local', 'K'), [], 'local codes map to nothing');
  t.regex(codes(CATALOGUE, 'L-00000000') as string, /^invalid: unknown code/);
  t.regex(codes(CATALOGUE, 'F-613bc1') as string, /grouping concept/);
  t.regex(codes(NATIONAL, '1234') as string, /15 digits/);
  t.regex(codes(LEGACY, '1234') as string, /9 or 11 digits/);
  t.regex(codes(CATALOGUE, '') as string, /no code/);

  const k = c.item(ITEM.potassium)!;
  t.is(k.category, 'F-613bc1', "the rules' category is the field");
  t.is(k.categoryDisplay, '化学');
  t.is(k.kind, '检验');
  t.is(k.kindCode, 'LAB');
  t.is(k.group.display, '电解质');
  t.is(k.windowDays, 7);
  t.is(c.item(ITEM.abo)!.windowDays, undefined);
});

test('category tokens name kinds, fields and categories by code or Chinese name', (t) => {
  const c = currentCatalogue();
  const k = c.item(ITEM.potassium)!;
  const ct = c.item(ITEM.ct)!;
  const within = (code: string, item = k) => CatalogueView.within(item, c.groupCodes({ code }) ?? new Set());
  t.true(within('LAB'));
  t.true(within('检验'));
  t.false(within('EXAM'));
  t.true(within('EXAM', ct));
  t.true(within('化学'));
  t.true(within('F-613bc1'));
  t.true(within('电解质'));
  t.false(within('血常规'));
  t.is(c.groupCodes({ code: '没有这个分类' }), undefined);
  t.is(c.groupCodes({ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }), undefined);
  t.is(c.groupCodes({ code: '铁代谢' })?.size, 2, 'a category name used under two fields names both');
});

test('institutions: the city from the district, qualifications from the extension, date-only periods cover whole days', (t) => {
  t.is(cityOfDistrict('440104'), '440100');
  t.is(cityOfDistrict('440604'), '440600');
  t.is(instant('2026-12-31', 'end'), '2026-12-31T23:59:59.999+08:00');
  t.is(instant('2026-02', 'end'), '2026-02-28T23:59:59.999+08:00');
  t.is(instant('2024', 'start'), '2024-01-01T00:00:00+08:00');
  t.is(instant('2024-06-15T08:00:00Z', 'start'), '2024-06-15T08:00:00Z');
  const org: Organization = {
    resourceType: 'Organization',
    id: 'o1',
    extension: [
      { url: EXT_DISTRICT, valueCoding: { system: DIVISION, code: '440104' } },
      {
        url: EXT_QC,
        extension: [
          { url: 'category', valueCoding: { system: CATALOGUE, code: 'F-613bc1' } },
          { url: 'coverage', valueCoding: { system: DIVISION, code: '440100' } },
          { url: 'coverage', valueCoding: { system: DIVISION, code: '440600' } },
          { url: 'period', valuePeriod: { start: '2024-01-01', end: '2026-12-31' } },
        ],
      },
      { url: EXT_QC, extension: [{ url: 'category', valueCoding: { system: 'http://other.example', code: 'X' } }] },
    ],
  };
  t.deepEqual(institutionOf(org), {
    id: 'o1',
    city: '440100',
    qualifications: [{ category: 'F-613bc1', covers: ['440100', '440600'], start: '2024-01-01T00:00:00+08:00', end: '2026-12-31T23:59:59.999+08:00' }],
  });
  t.deepEqual(institutionOf(undefined, 'gone'), { id: 'gone', city: '', qualifications: [] });
});

test('the items of a report: its code and each Observation, merged; abnormal and critical flags', (t) => {
  const obs = (id: string, system: string, code: string, flag?: string, status: Observation['status'] = 'final'): Observation => ({
    resourceType: 'Observation',
    id,
    status,
    code: { coding: [{ system, code }] },
    ...(flag ? { interpretation: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag }] }] } : {}),
  });
  const observations = [obs('a', LOINC, '6690-2', 'H'), obs('b', CATALOGUE, ITEM.wbc, 'HH'), obs('c', LOINC, '718-7', 'N'), obs('d', LOINC, '789-8', 'L', 'entered-in-error')];
  const report: DiagnosticReport = { resourceType: 'DiagnosticReport', status: 'final', code: { coding: [{ system: NATIONAL, code: '002501010150000' }] } };
  const items = itemsOfReport(report, observations, currentCatalogue());
  t.deepEqual(items.map((i) => i.item.code), [ITEM.cbc, ITEM.wbc, 'L-439EDFA3', 'L-B3C40679']);
  t.is(items[0].observations.length, 4, 'the panel is reported by all its Observations');
  t.deepEqual(items[1].observations.map((o) => o.id), ['a', 'b'], 'two Observations of the same item');
  t.deepEqual(observations.map(isAbnormal), [true, true, false, false], 'N is normal; entered-in-error does not count');
  t.deepEqual(observations.map(isCritical), [false, true, false, false]);
});
