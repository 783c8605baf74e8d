/**
 * The monitors' pure rules (server/monitoring/rules.ts): grading, the learned baseline, interruption against
 * the baseline, recognition disabled, timeliness and its statistics.
 */
import test from 'ava';
import {
  ALWAYS,
  checkThresholds,
  DEFAULT_INTERRUPTION_THRESHOLDS,
  expectedMinutes,
  grade,
  judgeDisabled,
  judgeInterruption,
  judgeTimeliness,
  learnBaseline,
  median,
  percentile,
  slotOf,
  summariseTimeliness,
} from '../server/monitoring/rules.ts';

const H = 3_600_000;
const M = 60_000;
/** Monday 2024-06-03 00:00 in Asia/Shanghai. */
const MONDAY = Date.parse('2024-06-03T00:00:00+08:00');

test('grade: none below 30 min, then 1 at 30 min, 2 at 2 h, 3 at 8 h, 4 at 24 h (the issue defaults)', (t) => {
  const g = (min: number) => grade(min, DEFAULT_INTERRUPTION_THRESHOLDS);
  t.deepEqual([g(0), g(29), g(30), g(119), g(120), g(479), g(480), g(1439), g(1440), g(10_000)], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  t.is(grade(10, [5, 10, 15, 20]), 2, 'configured thresholds apply');
});

test('thresholds must be four ascending non-negative numbers', (t) => {
  t.throws(() => checkThresholds([30, 20, 40, 50], 'x'), { message: /ascending/ });
  t.throws(() => checkThresholds([30, 40], 'x'), { message: /four/ });
  t.throws(() => checkThresholds([-1, 2, 3, 4], 'x'), { message: /non-negative/ });
  t.deepEqual(checkThresholds([1, 2, 3, 4], 'x'), [1, 2, 3, 4]);
  t.deepEqual(checkThresholds([95, 80, 50, 20], 'x', true), [95, 80, 50, 20]);
});

test('slots are weekday × hour in Asia/Shanghai', (t) => {
  t.is(slotOf(MONDAY), 0);
  t.is(slotOf(MONDAY + 9 * H + 59 * M), 9);
  t.is(slotOf(MONDAY + 24 * H + 3 * H), 27, 'Tuesday 03:00');
  t.is(slotOf(Date.parse('2024-06-09T23:30:00+08:00')), 6 * 24 + 23, 'Sunday 23:30');
});

/** Uploads every hour from 08:00 to 17:00 on weekdays, for `weeks` weeks from MONDAY. */
function dayClinic(weeks: number): number[] {
  const out: number[] = [];
  for (let w = 0; w < weeks; w++) for (let d = 0; d < 5; d++) for (let h = 8; h < 18; h++) out.push(MONDAY + (w * 7 + d) * 24 * H + h * H + 10 * M);
  return out;
}

test('the baseline learns the hours and weekdays an institution sends in; too little history gives the default', (t) => {
  const uploads = dayClinic(4);
  const b = learnBaseline(uploads, MONDAY + 28 * 24 * H);
  t.is(b.source, 'learned');
  t.true(b.slots[8] && b.slots[17], 'Monday 08–17 usual');
  t.false(b.slots[7] || b.slots[18] || b.slots[2], 'Monday night not usual');
  t.false(b.slots[5 * 24 + 10], 'Saturday not usual');
  t.is(b.slots.filter(Boolean).length, 50);
  t.is(learnBaseline(uploads.slice(0, 20), MONDAY + 2 * 24 * H).source, 'default', 'two days of history: default');
  t.is(learnBaseline([], MONDAY).source, 'default');
  // a slot seen in only one of four weeks is not usual
  const once = [...uploads, MONDAY + 3 * 24 * H + 2 * H];
  t.false(learnBaseline(once, MONDAY + 28 * 24 * H).slots[3 * 24 + 2]);
});

test('expected minutes count only the usual slots', (t) => {
  const b = learnBaseline(dayClinic(4), MONDAY + 28 * 24 * H);
  const fri1750 = MONDAY + 4 * 24 * H + 17 * H + 50 * M;
  // Friday 17:50 → next Monday 08:40: 10 min on Friday + 40 min on Monday
  t.is(expectedMinutes(fri1750, fri1750 + (2 * 24 + 14) * H + 50 * M, b), 50);
  t.is(judgeInterruption(fri1750, fri1750 + (2 * 24 + 14) * H + 50 * M, b).minutes, 40, 'the interruption starts when the next usual hour does');
  t.is(expectedMinutes(0, 90 * M, ALWAYS), 90);
  t.is(expectedMinutes(5, 5, ALWAYS), 0);
});

test('interruption: a night-silent clinic is not alarmed at night and is alarmed in its hours; it clears when data comes', (t) => {
  const b = learnBaseline(dayClinic(4), MONDAY + 28 * 24 * H);
  const last = MONDAY + 28 * 24 * H + 17 * H + 10 * M; // Monday 17:10, its last usual hour
  t.is(judgeInterruption(last, last + 50 * M, b).level, 0, '18:00: the clinic closed, the rest of 17:xx is not expected');
  t.is(judgeInterruption(last, last + 10 * H, b).level, 0, '03:10 at night: silent is usual');
  const tue = MONDAY + 29 * 24 * H;
  t.like(judgeInterruption(last, tue + 8 * H + 29 * M, b), { level: 0, minutes: 29 });
  t.like(judgeInterruption(last, tue + 8 * H + 30 * M, b), { level: 1, minutes: 30, reason: 'silent', since: new Date(last).toISOString() });
  t.is(judgeInterruption(last, tue + 10 * H, b).level, 2, 'two hours into its day');
  t.is(judgeInterruption(last, tue + 16 * H, b).level, 3, 'eight hours');
  t.is(judgeInterruption(last, MONDAY + 31 * 24 * H + 11 * H + 59 * M, b).level, 3, 'Thursday 11:59: 23 h 59 min of usual hours');
  t.is(judgeInterruption(last, MONDAY + 31 * 24 * H + 12 * H, b).level, 4, '24 usual hours (Tuesday, Wednesday, Thursday 08–12)');
  // a report in mid-morning: the rest of that hour is expected (the clinic sends at 11 too)
  const mid = tue + 10 * H + 5 * M;
  t.is(judgeInterruption(mid, mid + 29 * M, b).level, 0);
  t.is(judgeInterruption(mid, mid + 30 * M, b).level, 1);
  t.is(judgeInterruption(mid, mid + 31 * M, b).level, 1);
  t.like(judgeInterruption(mid + 40 * M, mid + 41 * M, b), { level: 0, reason: 'ok' }, 'data again: cleared');
});

test('interruption: an institution without history uses the default baseline (every hour) and one that never sent is not graded', (t) => {
  const last = MONDAY + 2 * H; // Monday 02:00
  t.is(judgeInterruption(last, last + 29 * M, ALWAYS).level, 0);
  t.is(judgeInterruption(last, last + 30 * M, ALWAYS).level, 1);
  t.is(judgeInterruption(last, last + 2 * H, ALWAYS).level, 2);
  t.is(judgeInterruption(last, last + 8 * H, ALWAYS).level, 3);
  t.is(judgeInterruption(last, last + 24 * H, ALWAYS).level, 4);
  t.is(judgeInterruption(last, last + 24 * H, ALWAYS, [60, 600, 6000, 60000]).level, 2, 'configured thresholds');
  t.like(judgeInterruption(undefined, last, ALWAYS), { level: 0, reason: 'no-history' });
});

test('recognition disabled: activity without a successful call, graded from the last successful call; all-failed named', (t) => {
  const D = 24 * H;
  t.like(judgeDisabled({ failedAfter: 0 }, MONDAY), { level: 0 }, 'no activity at all');
  t.like(judgeDisabled({ lastOk: MONDAY, lastActivity: MONDAY - H, firstActivityAfter: undefined, failedAfter: 0 }, MONDAY + 30 * D), { level: 0 }, 'no activity since the last call');
  const a = { lastOk: MONDAY, firstActivityAfter: MONDAY + H, lastActivity: MONDAY + 5 * D, failedAfter: 0 };
  t.like(judgeDisabled(a, MONDAY + D - M), { level: 0 });
  t.like(judgeDisabled(a, MONDAY + D), { level: 1, reason: 'no-calls', since: new Date(MONDAY).toISOString() });
  t.is(judgeDisabled(a, MONDAY + 3 * D).level, 2);
  t.is(judgeDisabled(a, MONDAY + 7 * D).level, 3);
  t.is(judgeDisabled(a, MONDAY + 14 * D).level, 4);
  t.like(judgeDisabled({ ...a, failedAfter: 3 }, MONDAY + 2 * D), { level: 1, reason: 'all-failed' });
  // never called: graded from the first activity
  t.like(judgeDisabled({ firstActivityAfter: MONDAY, lastActivity: MONDAY + D, failedAfter: 0 }, MONDAY + 3 * D), { level: 2, since: new Date(MONDAY).toISOString() });
  t.is(judgeDisabled(a, MONDAY + D, [60, 120, 180, 240]).level, 4, 'configured thresholds');
});

test('timeliness: late above 30 minutes; counts, on-time rate, median and nearest-rank p95', (t) => {
  t.deepEqual(summariseTimeliness([]), { reports: 0, late: 0, onTime: 0, onTimeRate: null, medianMinutes: null, p95Minutes: null });
  const s = summariseTimeliness([10, 30, 31, 5, 120]);
  t.deepEqual(s, { reports: 5, late: 2, onTime: 3, onTimeRate: 60, medianMinutes: 30, p95Minutes: 120 });
  t.is(summariseTimeliness([10, 30, 31], 60).late, 0, 'configured threshold');
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(hundred, 95), 95);
  t.is(percentile([7], 95), 7);
  t.is(median([1, 2, 3, 4]), 2.5);
  t.like(judgeTimeliness(summariseTimeliness([1, 2, 3])), { level: 0 });
  t.like(judgeTimeliness(summariseTimeliness([40, 40, 40])), { level: 4, reason: 'late' });
  t.is(judgeTimeliness(summariseTimeliness([1, 1, 1, 1, 1, 1, 1, 1, 1, 40])).level, 1, '90 % on time');
  t.is(judgeTimeliness(summariseTimeliness([1, 1, 1, 40])).level, 2, '75 %');
  t.is(judgeTimeliness(summariseTimeliness([1, 40])).level, 2, '50 %: below 80, not below 50');
  t.is(judgeTimeliness(summariseTimeliness([1, 1, 40, 40, 40])).level, 3, '40 %');
});
