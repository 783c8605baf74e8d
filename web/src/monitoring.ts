/**
 * What the monitoring pages share: Shanghai calendar days, the districts of Guangzhou (GB/T 2260, as the platform
 * stores an institution's district in its Organization's district extension), the monitors' and levels' Chinese
 * names, and the live counter stream (/api/monitoring/events, Server-Sent Events read through fetch so the
 * bearer token goes in the Authorization header — EventSource cannot send one).
 */
import { token } from './api.ts';

/** The day (YYYY-MM-DD) in Asia/Shanghai, `offset` days from today. */
export function shanghaiDay(offset = 0, now = Date.now()): string {
  return new Date(now + 8 * 3_600_000 + offset * 86_400_000).toISOString().slice(0, 10);
}

export const CITY = '440100';

/** Guangzhou's 11 districts (GB/T 2260): code → name; the same codes are the `adcode` of the map's GeoJSON features. */
export const DISTRICTS: Record<string, string> = {
  '440103': '荔湾区',
  '440104': '越秀区',
  '440105': '海珠区',
  '440106': '天河区',
  '440111': '白云区',
  '440112': '黄埔区',
  '440113': '番禺区',
  '440114': '花都区',
  '440115': '南沙区',
  '440117': '从化区',
  '440118': '增城区',
};

export function districtName(code: string | undefined): string {
  if (!code || code === 'unknown') return '未登记';
  if (DISTRICTS[code]) return DISTRICTS[code];
  return code.startsWith('4406') ? `佛山市（${code}）` : code;
}

export const MONITORS: Record<string, string> = { interruption: '断传', 'recognition-disabled': '互认停用', timeliness: '及时性' };
export const FLOWS: Record<string, string> = { lab: '检验', exam: '检查' };
export const LEVELS = ['正常', '一级', '二级', '三级', '四级'];
export const LEVEL_COLOURS = ['#22c55e', '#facc15', '#fb923c', '#ef4444', '#a21caf'];
export const TASK_STATUS: Record<string, string> = {
  requested: '已下发',
  accepted: '已接收',
  'in-progress': '整改中',
  completed: '已完成',
  rejected: '已拒绝',
  cancelled: '已撤销',
};

export type UsageCode = 'lab-reports' | 'exam-reports' | 'checks' | 'reminders' | 'recognised' | 'not-recognised' | 'undecided-reminders' | 'duplicates-avoided';
export interface UsageRow {
  key: string;
  day: string;
  usage: Record<UsageCode, number>;
  timeliness: { reports: number; late: number; onTime: number; onTimeRate: number | null };
  /** The estimated saving: recognised items × the catalogue price (items without a price are not counted). */
  saving?: { yuan: number; recognisedItems: number; pricedItems: number };
}
export interface UsageAnswer {
  from: string;
  to: string;
  rows: UsageRow[];
  /** How the saving is estimated. */
  saving: { counted: boolean; currency?: string; note?: string };
}

/** Recognition rate in percent (one decimal): recognised of all decisions; null without decisions. */
export function recognitionRate(recognised: number, notRecognised: number): number | null {
  const n = recognised + notRecognised;
  return n ? Math.round((recognised / n) * 1000) / 10 : null;
}

export function percent(part: number, whole: number): number | null {
  return whole ? Math.round((part / whole) * 1000) / 10 : null;
}

export interface LiveCounts {
  district: string;
  counts: Partial<Record<'reports' | 'checks' | 'recognitions' | 'anchors' | 'alerts', number>>;
}

/**
 * Follows the live stream until `stop()` is called; reconnects after a pause when the connection drops.
 * `onReady` is called each time the stream is (re)opened, so the caller can reload what it missed.
 */
export function followLive(onCounts: (e: LiveCounts) => void, onReady: () => void): { stop: () => void } {
  let stopped = false;
  let controller: AbortController | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const open = async () => {
    controller = new AbortController();
    try {
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      const t = token();
      if (t) headers.Authorization = `Bearer ${t}`;
      const res = await fetch('/api/monitoring/events', { headers, signal: controller.signal });
      if (!res.ok || !res.body) throw new Error(`stream ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (event === 'ready') onReady();
          else if (event === 'counters' && data) onCounts(JSON.parse(data) as LiveCounts);
        }
      }
    } catch {
      // dropped or refused: try again below
    }
    if (!stopped) retry = setTimeout(() => void open(), 5_000);
  };
  void open();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(retry);
      controller?.abort();
    },
  };
}

/**
 * The requesting institution a report link names (`?requester=Organization/<id>`, as the CDS cards and the HIS
 * pass it), as a query suffix for $view / $reports; empty when none (a doctor's own institution is then the
 * platform's default).
 */
export function requesterQuery(value: unknown, first: '?' | '&'): string {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' && /^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(v) ? `${first}requester=${encodeURIComponent(v)}` : '';
}
