/**
 * The recognition rules (《医疗机构检查检验结果互认管理办法》, 国卫医发〔2022〕6号) as pure functions.
 *
 * A result is recognisable for a requesting institution when
 *  1. its item is in the recognition catalogue;
 *  2. the performing institution was QC-qualified (质控合格) for the item's category, at the time of the
 *     report, at a scope that covers the requester (its city, its province, or a partner city);
 *  3. the report is final or amended (never registered, preliminary, cancelled, entered-in-error…);
 *  4. it carries the HR mark;
 *  5. it is still within the item's validity window, counted from the issue time of its latest version
 *     (items without a window never expire).
 * Every "no" is explained by one or more reasons; the caller never has to guess.
 */

/** Administrative division codes (GB/T 2260), e.g. 440100 广州市, 440600 佛山市, 440000 广东省. */
export type RegionCode = string;

export interface CatalogueItem {
  code: string;
  display: string;
  /** The QC category the performing institution must be qualified for (e.g. 临床化学, 超声). */
  category: string;
  /** How the category is named in explanations, when `category` is a code (e.g. F-613bc1 → 化学). */
  categoryDisplay?: string;
  /** Validity window in days; undefined means the result does not expire. */
  windowDays?: number;
  /**
   * Set when the item has been withdrawn from the catalogue (status retired): the ISO date from which it no
   * longer belongs to it (its effectiveTo), or `true` when the catalogue gives no date. A withdrawn item's
   * results are no longer recognised once that date has passed, whatever their window.
   */
  retired?: string | true;
}

export interface Qualification {
  category: string;
  /** The regions whose institutions must recognise results of this category (city, province or partner cities). */
  covers: RegionCode[];
  /** Inclusive ISO instants; `end` undefined means still qualified. */
  start: string;
  end?: string;
}

export interface Institution {
  id: string;
  /** The city (and through it the province) the institution belongs to. */
  city: RegionCode;
  qualifications: Qualification[];
}

export interface ReportFacts {
  id: string;
  itemCode: string;
  status: string;
  /** Issue time of the latest version (an amended report counts from its amendment). */
  issued: string;
  hrMark?: string;
  performer: Institution;
}

export type ReasonCode = 'not-in-catalogue' | 'not-qc-qualified' | 'scope-not-covered' | 'not-final' | 'no-hr-mark' | 'expired' | 'not-yet-issued';

export interface Reason {
  code: ReasonCode;
  /** zh-CN explanation for the doctor and the integrator. */
  text: string;
}

export interface Verdict {
  recognisable: boolean;
  reasons: Reason[];
  /**
   * Whole days left in the window as a person counts them: calendar days (Asia/Shanghai) from today to the
   * day the window ends — issued 24 h ago with a 7-day window → 6, 0 on the last day. Only on recognisable
   * results; undefined for items that do not expire.
   */
  daysRemaining?: number;
  /** When the window ends (ISO), if it does. */
  expires?: string;
}

const RECOGNISABLE_STATUSES = new Set(['final', 'amended', 'corrected', 'appended']);
const DAY_MS = 86_400_000;
/** Asia/Shanghai: UTC+08:00 all year (no daylight saving). */
const CHINA_OFFSET_MS = 8 * 3_600_000;

/** The calendar day in Asia/Shanghai of an instant, as a day number. */
function chinaDay(ms: number): number {
  return Math.floor((ms + CHINA_OFFSET_MS) / DAY_MS);
}

/** The province of a city code: 440100 → 440000. */
export function provinceOf(region: RegionCode): RegionCode {
  return `${region.slice(0, 2)}0000`;
}

/** Whether a qualification's coverage includes a requester in `city`. */
export function covers(q: Qualification, city: RegionCode): boolean {
  return q.covers.includes(city) || q.covers.includes(provinceOf(city));
}

/**
 * Whether a retired item's withdrawal has taken effect at `now` (an undated retirement has). A withdrawal
 * date without a time is a calendar day in China: it takes effect at its midnight in Asia/Shanghai, not UTC's.
 */
function withdrawn(item: CatalogueItem, now: Date): boolean {
  if (item.retired === undefined) return false;
  if (item.retired === true) return true;
  const at = /^\d{4}-\d{2}-\d{2}$/.test(item.retired) ? Date.parse(item.retired) - CHINA_OFFSET_MS : Date.parse(item.retired);
  return Number.isNaN(at) || at <= now.getTime();
}

function activeAt(q: Qualification, at: number): boolean {
  return Date.parse(q.start) <= at && (q.end === undefined || at <= Date.parse(q.end));
}

export function evaluate(report: ReportFacts, item: CatalogueItem | undefined, requester: Pick<Institution, 'id' | 'city'>, now: Date): Verdict {
  const reasons: Reason[] = [];
  const issuedAt = Date.parse(report.issued);
  if (!item) {
    reasons.push({ code: 'not-in-catalogue', text: `项目 ${report.itemCode} 不在互认目录中` });
  } else if (withdrawn(item, now)) {
    const since = item.retired === true ? '' : `于 ${item.retired!.slice(0, 10)} `;
    reasons.push({ code: 'not-in-catalogue', text: `项目 ${item.display} 已${since}移出互认目录` });
  }
  if (!RECOGNISABLE_STATUSES.has(report.status)) {
    reasons.push({ code: 'not-final', text: `报告状态为 ${report.status}，只有最终报告可以互认` });
  }
  if (!report.hrMark || report.hrMark.trim() === '') {
    reasons.push({ code: 'no-hr-mark', text: '报告未标注互认标识（HR）' });
  }
  if (Number.isNaN(issuedAt) || issuedAt > now.getTime()) {
    reasons.push({ code: 'not-yet-issued', text: '报告发布时间无效或晚于当前时间' });
  }
  if (item) {
    const label = item.categoryDisplay ?? item.category;
    const qualified = report.performer.qualifications.filter((q) => q.category === item.category && !Number.isNaN(issuedAt) && activeAt(q, issuedAt));
    if (qualified.length === 0) {
      reasons.push({ code: 'not-qc-qualified', text: `出具机构在报告时未获得「${label}」质控合格` });
    } else if (!qualified.some((q) => covers(q, requester.city))) {
      reasons.push({ code: 'scope-not-covered', text: `出具机构「${label}」质控合格的互认范围不覆盖申请机构所在地区` });
    }
  }
  let daysLeft: number | undefined;
  let expires: string | undefined;
  if (item?.windowDays !== undefined && !Number.isNaN(issuedAt)) {
    const end = issuedAt + item.windowDays * DAY_MS;
    expires = new Date(end).toISOString();
    if (end < now.getTime()) {
      reasons.push({ code: 'expired', text: `已超过 ${item.windowDays} 天互认有效期` });
    } else {
      daysLeft = chinaDay(end) - chinaDay(now.getTime());
    }
  }
  const recognisable = reasons.length === 0;
  return { recognisable, reasons, ...(recognisable && daysLeft !== undefined ? { daysRemaining: daysLeft } : {}), ...(expires ? { expires } : {}) };
}
