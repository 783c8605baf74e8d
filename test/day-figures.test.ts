/**
 * Figures per closed day (server/db/day-figures.ts, migration 044): the usage figures and the chain statistics
 * of a day that ended are counted once and kept; what is served is then the kept rows — until a fact of that
 * day is written, changed or removed (a late report, a decision on an old record, a status found by a sweep) or
 * the districts change, when the day is counted again. Today is always counted live. Facts are inserted
 * directly for days in the past (the server's clock is the real one); both stores.
 */
import test from 'ava';
import { dayFigures, lastSettledDay, type DayFigure } from '../server/db/day-figures.ts';
import { insertReports } from './helpers/monitoring-facts.ts';
import { organization } from './helpers/recognition-data.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

let s: TestServer;
const DAYMS = 86_400_000;
/** A day in Asia/Shanghai, n days before today. */
const daysAgo = (n: number) => new Date(Date.now() + 8 * 3_600_000 - n * DAYMS).toISOString().slice(0, 10);
/** Noon of that day (Asia/Shanghai), in ms. */
const noon = (day: string) => Date.parse(`${day}T12:00:00+08:00`);
const org: Record<string, string> = {};

test.before(async () => {
  s = await startTestServer({});
  for (const [k, district] of [
    ['dfa', '440103'],
    ['dfb', '440104'],
  ] as const) {
    const res = await s.fhir('Organization', { method: 'POST', json: organization(`df-${k}`, `机构-${k}`, district, []) });
    org[k] = `Organization/${(await res.json()).id}`;
  }
});
test.after.always(async () => {
  await s?.close();
});

const get = async (path: string) => {
  const res = await fetch(`${s.huren.url}/api/${path}`, { headers: { authorization: `Bearer ${s.token}` } });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as any;
};
const usage = (day: string, scope: string) => get(`monitoring/usage?from=${day}&to=${day}&scope=${scope}`);
const kept = async (kind: string, day: string) => (await s.huren.db.query(`SELECT gen FROM day_figures_day WHERE kind = $1 AND day = $2::date`, [kind, day])).length === 1;

test.serial('a past day is counted once and kept; a late report of that day counts it again', async (t) => {
  const day = daysAgo(5);
  await insertReports(s.huren.db, [
    [org.dfa!, 'lab', noon(day), noon(day) - 10 * 60_000],
    [org.dfa!, 'lab', noon(day) + 1000, noon(day) - 50 * 60_000],
    [org.dfb!, 'exam', noon(day) + 2000, noon(day) - 5 * 60_000],
  ]);
  const first = await usage(day, 'institution');
  t.deepEqual(first.rows.map((r: any) => [r.key, r.usage['lab-reports'], r.usage['exam-reports']]), [
    [org.dfa, 2, 0],
    [org.dfb, 0, 1],
  ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
  t.true(await kept('usage', day), 'the day is kept after its first read');
  t.like(first.rows.find((r: any) => r.key === org.dfa).timeliness, { reports: 2, late: 1, onTime: 1, medianMinutes: 30 });
  // what is served now is the kept rows: changed by hand, the change shows (no fact moved, so no recount)
  await s.huren.db.query(`UPDATE day_figures SET figures = jsonb_set(figures, '{usage,lab-reports}', '99') WHERE kind = 'usage' AND day = $1::date AND scope = 'institution' AND key = $2`, [day, org.dfa]);
  t.is((await usage(day, 'institution')).rows.find((r: any) => r.key === org.dfa).usage['lab-reports'], 99);
  // a late report of that day: the day is counted again from the facts
  await s.huren.db.query(
    `INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at) VALUES ('late-1', 1, $1, 'lab', $2::timestamptz, NULL)`,
    [org.dfa, new Date(noon(day) + 5000).toISOString()]
  );
  const again = await usage(day, 'institution');
  t.is(again.rows.find((r: any) => r.key === org.dfa).usage['lab-reports'], 3);
  // the district and city scopes of the same day come from the same count
  const city = await usage(day, 'city');
  t.deepEqual(city.rows.map((r: any) => [r.key, r.usage['lab-reports'] + r.usage['exam-reports']]), [['440100', 4]]);
  const districts = await usage(day, 'district');
  t.deepEqual(districts.rows.map((r: any) => [r.key, r.usage['lab-reports']]), [
    ['440103', 3],
    ['440104', 0],
  ]);
});

test.serial('a decision recorded later on an old recognition record counts its day again', async (t) => {
  const day = daysAgo(6);
  await s.huren.db.query(`INSERT INTO monitoring_record (id, institution, kind, at, implicated) VALUES ('df-rec-1', $1, 'recognition-check', $2::timestamptz, 1)`, [
    org.dfa,
    new Date(noon(day)).toISOString(),
  ]);
  const before = (await usage(day, 'city')).rows[0];
  t.like(before.usage, { checks: 1, reminders: 1, recognised: 0, 'undecided-reminders': 1 });
  t.true(await kept('usage', day));
  await s.huren.db.query(`INSERT INTO monitoring_decision (record_id, idx, decision, reason, item, at, items, priced, saving) VALUES ('df-rec-1', 0, 'recognised', NULL, NULL, now(), 2, 1, 35.5)`);
  const after = (await usage(day, 'city')).rows[0];
  t.like(after.usage, { checks: 1, recognised: 1, 'undecided-reminders': 0 });
  t.deepEqual(after.saving, { yuan: 35.5, recognisedItems: 2, pricedItems: 1 });
  // the record's reminder count changes (the record is written again): counted again too
  await s.huren.db.query(`UPDATE monitoring_record SET implicated = 0 WHERE id = 'df-rec-1'`);
  t.is((await usage(day, 'city')).rows[0].usage.reminders, 0);
});

test.serial('an institution moved to another district moves its kept figures', async (t) => {
  const day = daysAgo(5);
  const before = await usage(day, 'district');
  t.deepEqual(before.rows.map((r: any) => r.key), ['440103', '440104']);
  const current = await (await s.fhir(org.dfb!)).json();
  const moved = organization('df-dfb', '机构-dfb', '440105', []);
  const res = await s.fhir(org.dfb!, { method: 'PUT', json: { ...moved, id: current.id } });
  t.is(res.status, 200);
  const after = await usage(day, 'district');
  t.deepEqual(after.rows.map((r: any) => [r.key, r.usage['exam-reports']]), [
    ['440103', 0],
    ['440105', 1],
  ]);
});

test.serial('chain statistics: an old version whose status changed counts its day again', async (t) => {
  const day = daysAgo(7);
  await s.huren.db.query(
    `INSERT INTO report_version (report_id, version, current, performer, chain_status, created_at) VALUES ('df-rv-1', 1, true, $1, 'pending', $2::timestamptz), ('df-rv-2', 1, true, $1, 'unanchored', $2::timestamptz)`,
    [org.dfa, new Date(noon(day)).toISOString()]
  );
  const stats = () => get(`statistics/chain?from=${day}&to=${day}`);
  const first = await stats();
  t.like(first.totals, { received: 2, pending: 1, unanchored: 1, consistent: 0 });
  t.true(await kept('chain', day));
  // an anchor found later: the version is consistent now
  await s.huren.db.query(`UPDATE report_version SET chain_status = 'consistent', anchor_source = 'platform' WHERE report_id = 'df-rv-1'`);
  const second = await stats();
  t.like(second.totals, { received: 2, pending: 0, consistent: 1, 'anchored-platform': 1 });
  // a sweep that only confirms (no change of status) leaves the kept day as it is
  const [gen] = await s.huren.db.query<{ gen: string }>(`SELECT gen FROM day_figures_gen WHERE kind = 'chain' AND day = $1::date`, [day]);
  await s.huren.db.query(`UPDATE report_version SET swept_at = now(), integrity_ok = true WHERE report_id = 'df-rv-1'`);
  const [same] = await s.huren.db.query<{ gen: string }>(`SELECT gen FROM day_figures_gen WHERE kind = 'chain' AND day = $1::date`, [day]);
  t.is(Number(same!.gen), Number(gen!.gen));
  // integrity lost (tampered in the store): inconsistent, counted again
  await s.huren.db.query(`UPDATE report_version SET integrity_ok = false WHERE report_id = 'df-rv-1'`);
  t.like((await stats()).totals, { consistent: 0, inconsistent: 1 });
  // the institution's filter reads the same kept day
  const mine = await get(`statistics/chain?from=${day}&to=${day}&institution=${org.dfb}`);
  t.deepEqual(mine.rows, []);
});

test.serial('today is counted live and never kept', async (t) => {
  const today = daysAgo(0);
  await s.huren.db.query(`INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at) VALUES ('today-1', 1, $1, 'lab', now(), now())`, [org.dfa]);
  const rows = (await usage(today, 'institution')).rows;
  t.true(rows.find((r: any) => r.key === org.dfa).usage['lab-reports'] >= 1);
  t.false(await kept('usage', today));
});

test('dayFigures: a changed basis counts again; the settle margin after midnight', async (t) => {
  const calls: string[] = [];
  const count = async (from: string, to: string): Promise<DayFigure<{ n: number }>[]> => {
    calls.push(`${from}..${to}`);
    const out: DayFigure<{ n: number }>[] = [];
    for (let d = from; d <= to; d = new Date(Date.parse(`${d}T00:00:00Z`) + DAYMS).toISOString().slice(0, 10)) out.push({ day: d, scope: 'all', key: 'x', figures: { n: calls.length } });
    return out;
  };
  const now = new Date('2026-03-10T12:00:00+08:00');
  const q = { kind: 'test-kind', from: '2026-03-07', to: '2026-03-10', scope: 'all', basis: 'b1', count, now };
  const one = await dayFigures(s.huren.db, q);
  t.deepEqual(calls, ['2026-03-07..2026-03-09', '2026-03-10..2026-03-10'], 'the closed days once, today live');
  t.deepEqual(one.map((f) => f.day), ['2026-03-07', '2026-03-08', '2026-03-09', '2026-03-10']);
  await dayFigures(s.huren.db, q);
  t.deepEqual(calls.slice(2), ['2026-03-10..2026-03-10'], 'kept days are not counted again');
  await dayFigures(s.huren.db, { ...q, basis: 'b2' });
  t.deepEqual(calls.slice(3), ['2026-03-07..2026-03-09', '2026-03-10..2026-03-10'], 'another basis: counted again');
  // 00:30 in Shanghai: yesterday ended only half an hour ago and is still counted live
  t.is(lastSettledDay(new Date('2026-03-10T00:30:00+08:00')), '2026-03-08');
  t.is(lastSettledDay(new Date('2026-03-10T01:00:00+08:00')), '2026-03-09');
});

test.serial('the hourly keep-days job counts the past days ahead of their readers', async (t) => {
  const day = daysAgo(9);
  await s.huren.db.query(`INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at) VALUES ('keep-1', 1, $1, 'lab', $2::timestamptz, NULL)`, [
    org.dfa,
    new Date(noon(day)).toISOString(),
  ]);
  t.false(await kept('usage', day));
  t.true(await s.huren.scheduler.tick('monitoring.keep-days', new Date()));
  t.true(await kept('usage', day));
  t.is((await usage(day, 'city')).rows[0].usage['lab-reports'], 1);
});
