/**
 * The implicit ranges of FHIR dates and decimals (R4 search §3.1.1.4.6/§3.1.1.4.7): "2020-03" means the
 * whole month, "5.4" means [5.35, 5.45). Used both to index stored values and to read search values.
 */

export interface DateRange {
  /** Inclusive bounds in epoch milliseconds; ±Infinity for open ends. */
  low: number;
  high: number;
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The range a FHIR date, dateTime or instant covers, or undefined when the text is not one. */
export function dateRange(text: string): DateRange | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))) return undefined;
  let offsetMs = 0;
  if (tz && tz !== 'Z') {
    const sign = tz.startsWith('-') ? -1 : 1;
    const [oh, om] = tz.slice(1).split(':').map(Number);
    if (oh > 14 || om > 59) return undefined;
    offsetMs = sign * (oh * 60 + om) * 60_000;
  }
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const low = Date.UTC(year, month - 1, day, Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms) - offsetMs;
  let next: number;
  if (!mo) next = Date.UTC(year + 1, 0, 1);
  else if (!d) next = Date.UTC(year, month, 1);
  else if (h === undefined) next = Date.UTC(year, month - 1, day + 1);
  else if (s === undefined) next = low + offsetMs + 60_000;
  else if (!frac) next = low + offsetMs + 1000;
  else next = low + offsetMs + 1;
  return { low, high: next - offsetMs - 1 };
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

export function toSqlTimestamp(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return 'infinity';
  if (ms === Number.NEGATIVE_INFINITY) return '-infinity';
  return new Date(ms).toISOString();
}

export interface NumberRange {
  value: string;
  /** Bounds of the implicit precision range: [low, high). */
  low: string;
  high: string;
}

const NUMBER_RE = /^[+-]?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** The value and implicit precision range of a decimal written in a search, or undefined. */
export function numberRange(text: string): NumberRange | undefined {
  const m = NUMBER_RE.exec(text);
  if (!m) return undefined;
  const decimals = (m[2]?.length ?? 0) - (m[3] ? Number(m[3]) : 0);
  const value = Number(text);
  if (!Number.isFinite(value)) return undefined;
  // half a unit in the last significant place
  const half = 0.5 * 10 ** -decimals;
  return { value: String(value), low: fixed(value - half), high: fixed(value + half) };
}

function fixed(n: number): string {
  // enough digits to keep the bound exact for any realistic clinical value
  return Number(n.toPrecision(15)).toString();
}
