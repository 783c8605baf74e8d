import test from 'ava';
import { covers, evaluate, provinceOf, type CatalogueItem, type Institution, type ReportFacts } from '../server/recognition/rules.ts';

const GZ = '440100';
const FS = '440600';
const SZ = '440300'; // 深圳, same province
const CS = '430100'; // 长沙, another province
const now = new Date('2026-06-30T12:00:00+08:00');

const potassium: CatalogueItem = { code: 'K', display: '钾', category: '临床化学', windowDays: 7 };
const bloodType: CatalogueItem = { code: 'ABO', display: 'ABO血型', category: '临床检验' };

const hospital = (covers: string[], start = '2020-01-01T00:00:00Z', end?: string): Institution => ({
  id: 'gy1',
  city: GZ,
  qualifications: [{ category: '临床化学', covers, start, ...(end ? { end } : {}) }],
});

const report = (over: Partial<ReportFacts> = {}): ReportFacts => ({
  id: 'r1',
  itemCode: 'K',
  status: 'final',
  issued: '2026-06-28T09:00:00+08:00',
  hrMark: '粤HR',
  performer: hospital([GZ]),
  ...over,
});

test('a fresh, final, HR-marked result of a qualified institution is recognisable, with days left', (t) => {
  const v = evaluate(report(), potassium, { id: 'req', city: GZ }, now);
  t.true(v.recognisable);
  t.deepEqual(v.reasons, []);
  t.is(v.daysRemaining, 5); // issued 06-28 09:00 + 7 d = 07-05 09:00; now 06-30 12:00 → 5 calendar days (4 d 21 h)
  t.is(v.expires, '2026-07-05T01:00:00.000Z');
});

test('every combination of failed rules is reported, and only those', (t) => {
  // each rule with a way to break it
  const breakers = {
    'not-in-catalogue': { item: undefined as CatalogueItem | undefined },
    'not-final': { report: { status: 'preliminary' } },
    'no-hr-mark': { report: { hrMark: undefined } },
    expired: { report: { issued: '2026-06-01T09:00:00+08:00' } },
    'not-qc-qualified': { report: { performer: { ...hospital([GZ]), qualifications: [] } } },
  } as const;
  const names = Object.keys(breakers) as (keyof typeof breakers)[];
  for (let mask = 0; mask < 1 << names.length; mask++) {
    const broken = names.filter((_, i) => mask & (1 << i));
    let item: CatalogueItem | undefined = potassium;
    let r = report();
    for (const b of broken) {
      const spec = breakers[b] as { item?: CatalogueItem; report?: Partial<ReportFacts> };
      if ('item' in spec) item = spec.item;
      if (spec.report) r = { ...r, ...spec.report };
    }
    const v = evaluate(r, item, { id: 'req', city: GZ }, now);
    // without a catalogue item there is no window and no category to check
    const expected = broken.filter((b) => item || (b !== 'expired' && b !== 'not-qc-qualified'));
    t.deepEqual(v.reasons.map((x) => x.code).sort(), [...expected].sort(), broken.join('+') || 'none');
    t.is(v.recognisable, expected.length === 0);
    for (const reason of v.reasons) t.regex(reason.text, /[\u4e00-\u9fff]/, 'explained in Chinese');
  }
});

test('statuses: final and the amended family count, nothing else does', (t) => {
  for (const status of ['final', 'amended', 'corrected', 'appended']) {
    t.true(evaluate(report({ status }), potassium, { id: 'q', city: GZ }, now).recognisable, status);
  }
  for (const status of ['registered', 'partial', 'preliminary', 'cancelled', 'entered-in-error', 'unknown']) {
    t.deepEqual(evaluate(report({ status }), potassium, { id: 'q', city: GZ }, now).reasons.map((r) => r.code), ['not-final'], status);
  }
});

test('the window: last day counts, a day later does not; items without a window never expire', (t) => {
  const lastDay = evaluate(report({ issued: '2026-06-23T13:00:00+08:00' }), potassium, { id: 'q', city: GZ }, now);
  t.true(lastDay.recognisable);
  t.is(lastDay.daysRemaining, 0);
  const dayAfter = evaluate(report({ issued: '2026-06-23T11:00:00+08:00' }), potassium, { id: 'q', city: GZ }, now);
  t.deepEqual(dayAfter.reasons.map((r) => r.code), ['expired']);
  t.is(dayAfter.daysRemaining, undefined);
  const old = evaluate(report({ itemCode: 'ABO', issued: '2001-01-01T00:00:00Z', performer: { ...hospital([]), qualifications: [{ category: '临床检验', covers: [GZ], start: '2000-01-01T00:00:00Z' }] } }), bloodType, { id: 'q', city: GZ }, now);
  t.true(old.recognisable);
  t.is(old.daysRemaining, undefined);
  t.is(old.expires, undefined);
});

test('daysRemaining counts calendar days as a person reads them, and is given only for recognisable results', (t) => {
  // issued 24 h ago with a 7-day window: 6 days left (not 5 because a few milliseconds have passed)
  const at = new Date('2026-06-30T12:00:00.250+08:00');
  const yesterday = evaluate(report({ issued: '2026-06-29T12:00:00+08:00' }), potassium, { id: 'q', city: GZ }, at);
  t.is(yesterday.daysRemaining, 6);
  // issued an hour ago: 7; late in the evening, issued the same morning: still 7
  t.is(evaluate(report({ issued: '2026-06-30T11:00:00+08:00' }), potassium, { id: 'q', city: GZ }, at).daysRemaining, 7);
  t.is(evaluate(report({ issued: '2026-06-30T08:00:00+08:00' }), potassium, { id: 'q', city: GZ }, new Date('2026-06-30T23:30:00+08:00')).daysRemaining, 7);
  // days are Asia/Shanghai days: issued 23:30 there, read 40 minutes later on the next day
  t.is(evaluate(report({ issued: '2026-06-29T23:30:00+08:00' }), potassium, { id: 'q', city: GZ }, new Date('2026-06-30T00:10:00+08:00')).daysRemaining, 6);
  // a result that is not recognisable for another reason has no days left, only its window end
  const notFinal = evaluate(report({ status: 'preliminary', issued: '2026-06-29T12:00:00+08:00' }), potassium, { id: 'q', city: GZ }, at);
  t.false(notFinal.recognisable);
  t.is(notFinal.daysRemaining, undefined);
  t.is(notFinal.expires, '2026-07-06T04:00:00.000Z');
  const unqualified = evaluate(report({ performer: { ...hospital([GZ]), qualifications: [] } }), potassium, { id: 'q', city: GZ }, at);
  t.is(unqualified.daysRemaining, undefined);
});

test('QC scope: city, province, partner city', (t) => {
  const city = report({ performer: hospital([GZ]) });
  t.true(evaluate(city, potassium, { id: 'q', city: GZ }, now).recognisable);
  t.deepEqual(evaluate(city, potassium, { id: 'q', city: FS }, now).reasons.map((r) => r.code), ['scope-not-covered']);
  const province = report({ performer: hospital([provinceOf(GZ)]) });
  t.true(evaluate(province, potassium, { id: 'q', city: SZ }, now).recognisable);
  t.true(evaluate(province, potassium, { id: 'q', city: FS }, now).recognisable);
  t.deepEqual(evaluate(province, potassium, { id: 'q', city: CS }, now).reasons.map((r) => r.code), ['scope-not-covered']);
  const partner = report({ performer: hospital([GZ, FS]) });
  t.true(evaluate(partner, potassium, { id: 'q', city: FS }, now).recognisable);
  t.deepEqual(evaluate(partner, potassium, { id: 'q', city: SZ }, now).reasons.map((r) => r.code), ['scope-not-covered']);
  t.true(covers({ category: 'x', covers: ['440000'], start: '2020-01-01' }, FS));
  t.false(covers({ category: 'x', covers: ['440100'], start: '2020-01-01' }, FS));
});

test('qualification must hold at the time of the report, for the item category', (t) => {
  const lapsed = report({ performer: hospital([GZ], '2020-01-01T00:00:00Z', '2026-06-01T00:00:00Z') });
  t.deepEqual(evaluate(lapsed, potassium, { id: 'q', city: GZ }, now).reasons.map((r) => r.code), ['not-qc-qualified']);
  const later = report({ performer: hospital([GZ], '2026-06-29T00:00:00Z') });
  t.deepEqual(evaluate(later, potassium, { id: 'q', city: GZ }, now).reasons.map((r) => r.code), ['not-qc-qualified']);
  const lapsedAfter = report({ performer: hospital([GZ], '2020-01-01T00:00:00Z', '2026-06-29T00:00:00Z') });
  t.true(evaluate(lapsedAfter, potassium, { id: 'q', city: GZ }, now).recognisable, 'qualified when the report was issued');
  const otherCategory = report({ performer: { ...hospital([GZ]), qualifications: [{ category: '临床免疫', covers: [GZ], start: '2020-01-01T00:00:00Z' }] } });
  t.deepEqual(evaluate(otherCategory, potassium, { id: 'q', city: GZ }, now).reasons.map((r) => r.code), ['not-qc-qualified']);
});

test('HR mark must be present and non-blank; issue times in the future are refused', (t) => {
  t.deepEqual(evaluate(report({ hrMark: '  ' }), potassium, { id: 'q', city: GZ }, now).reasons.map((r) => r.code), ['no-hr-mark']);
  const future = evaluate(report({ issued: '2026-07-01T00:00:00+08:00' }), potassium, { id: 'q', city: GZ }, now);
  t.deepEqual(future.reasons.map((r) => r.code), ['not-yet-issued']);
  const garbage = evaluate(report({ issued: 'yesterday' }), potassium, { id: 'q', city: GZ }, now);
  t.true(garbage.reasons.some((r) => r.code === 'not-yet-issued'));
  t.false(garbage.recognisable);
});

test('an item withdrawn from the catalogue stops counting from its withdrawal date, whatever its window', (t) => {
  const withdrawnLater = { ...potassium, retired: '2026-07-01' };
  t.true(evaluate(report(), withdrawnLater, { id: 'req', city: GZ }, now).recognisable);
  const withdrawnBefore = { ...potassium, retired: '2026-06-29' };
  const v = evaluate(report(), withdrawnBefore, { id: 'req', city: GZ }, now);
  t.false(v.recognisable);
  t.deepEqual(v.reasons.map((r) => r.code), ['not-in-catalogue']);
  t.regex(v.reasons[0]!.text, /钾 已于 2026-06-29 移出互认目录/);
  const undated = evaluate(report(), { ...potassium, retired: true }, { id: 'req', city: GZ }, now);
  t.deepEqual(undated.reasons.map((r) => r.code), ['not-in-catalogue']);
  t.regex(undated.reasons[0]!.text, /已移出互认目录/);
});

test('a withdrawal date is a day in China: it takes effect at midnight Asia/Shanghai, eight hours before UTC midnight', (t) => {
  const item = { ...potassium, retired: '2026-07-01' };
  const justBefore = new Date('2026-06-30T23:59:00+08:00');
  const justAfter = new Date('2026-07-01T00:01:00+08:00'); // still 2026-06-30 in UTC
  const issued = report({ issued: '2026-06-30T09:00:00+08:00' });
  t.true(evaluate(issued, item, { id: 'req', city: GZ }, justBefore).recognisable);
  const v = evaluate(issued, item, { id: 'req', city: GZ }, justAfter);
  t.deepEqual(v.reasons.map((r) => r.code), ['not-in-catalogue']);
});
