/**
 * The briefing as an HTML document in Chinese (docs/monitoring.md "Briefing"), with its charts drawn on the
 * server by ECharts as SVG (server-side rendering, no browser needed for the HTML). The same HTML is printed to
 * PDF (briefing-pdf.ts). Every figure of the summary table carries `data-figure` (its name) so a reader can
 * check it against the MeasureReports.
 */
import * as echarts from 'echarts';
import type { AlertFollowUp, BriefingData, Figures } from './briefing-data.ts';

const FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'Microsoft YaHei', 'PingFang SC', sans-serif";

export const MONITOR_NAMES: Record<string, string> = {
  interruption: '报告数据断传',
  'recognition-disabled': '互认功能停用',
  timeliness: '报告上传及时性',
};
const LEVEL_NAMES = ['正常', '一级', '二级', '三级', '四级'];
const FLOW_NAMES: Record<string, string> = { lab: '检验', exam: '检查', all: '全部' };
const TASK_STATUS: Record<string, string> = {
  requested: '已下达',
  accepted: '已接收',
  'in-progress': '整改中',
  completed: '已完成',
  rejected: '已拒绝',
  cancelled: '已撤销',
};

export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
/** 12,345 */
export const int = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
/** 12,345.60 */
export const yuan = (n: number) => n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
/** 85.3% or — */
export const pct = (r: number | null) => (r === null ? '—' : `${(Math.round(r * 1000) / 10).toFixed(1)}%`);

/** The summary table's rows: name (data-figure), label, how it is shown, and whether it is a rate. */
export const SUMMARY: readonly { figure: keyof Figures; label: string; kind: 'count' | 'rate' | 'yuan' }[] = [
  { figure: 'reports', label: '收到报告（份）', kind: 'count' },
  { figure: 'labReports', label: '其中检验报告', kind: 'count' },
  { figure: 'examReports', label: '其中检查报告', kind: 'count' },
  { figure: 'checks', label: '互认查询（次）', kind: 'count' },
  { figure: 'reminders', label: '互认提醒（次）', kind: 'count' },
  { figure: 'recognised', label: '已互认（项）', kind: 'count' },
  { figure: 'notRecognised', label: '不予互认（项）', kind: 'count' },
  { figure: 'recognitionRate', label: '互认率', kind: 'rate' },
  { figure: 'undecided', label: '提醒未处理（次）', kind: 'count' },
  { figure: 'duplicatesAvoided', label: '避免重复检查（项）', kind: 'count' },
  { figure: 'onTimeRate', label: '报告及时上传率', kind: 'rate' },
  { figure: 'saving', label: '节约费用估算（元）', kind: 'yuan' },
  { figure: 'recognisedItems', label: '已互认项目（项）', kind: 'count' },
  { figure: 'pricedItems', label: '其中有目录价格', kind: 'count' },
  { figure: 'chainCoverage', label: '上链覆盖率', kind: 'rate' },
  { figure: 'hashConsistency', label: '哈希一致率', kind: 'rate' },
];

export function show(kind: 'count' | 'rate' | 'yuan', v: number | null): string {
  if (kind === 'rate') return pct(v);
  if (v === null) return '—';
  return kind === 'yuan' ? yuan(v) : int(v);
}

/** The change against the previous period: ±x.x% for counts and amounts, ±x.x 个百分点 for rates. */
export function trend(kind: 'count' | 'rate' | 'yuan', now: number | null, before: number | null): string {
  if (now === null || before === null) return '—';
  if (kind === 'rate') {
    const d = Math.round((now - before) * 1000) / 10;
    return d === 0 ? '持平' : `${d > 0 ? '↑' : '↓'}${Math.abs(d).toFixed(1)}个百分点`;
  }
  if (before === 0) return now === 0 ? '持平' : '新增';
  const r = Math.round(((now - before) / before) * 1000) / 10;
  return r === 0 ? '持平' : `${r > 0 ? '↑' : '↓'}${Math.abs(r).toFixed(1)}%`;
}

function chart(option: echarts.EChartsCoreOption, width = 680, height = 280): string {
  const c = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  c.setOption({ animation: false, textStyle: { fontFamily: FONT }, ...option });
  const svg = c.renderToSVGString();
  c.dispose();
  return svg;
}

function charts(d: BriefingData): string[] {
  const days = d.daily.map((x) => x.day.slice(5));
  const out = [
    chart({
      title: { text: '每日报告量与互认查询', left: 'center', textStyle: { fontSize: 14 } },
      legend: { bottom: 0 },
      grid: { left: 60, right: 20, top: 40, bottom: 50 },
      xAxis: { type: 'category', data: days },
      yAxis: { type: 'value' },
      series: [
        { name: '收到报告', type: 'line', data: d.daily.map((x) => x.reports), symbol: 'none' },
        { name: '互认查询', type: 'line', data: d.daily.map((x) => x.checks), symbol: 'none' },
      ],
    }),
    chart({
      title: { text: '每日互认结果与节约费用估算', left: 'center', textStyle: { fontSize: 14 } },
      legend: { bottom: 0 },
      grid: { left: 60, right: 70, top: 40, bottom: 50 },
      xAxis: { type: 'category', data: days },
      yAxis: [{ type: 'value', name: '项' }, { type: 'value', name: '元' }],
      series: [
        { name: '已互认', type: 'bar', stack: 'd', data: d.daily.map((x) => x.recognised) },
        { name: '不予互认', type: 'bar', stack: 'd', data: d.daily.map((x) => x.notRecognised) },
        { name: '节约费用（元）', type: 'line', yAxisIndex: 1, data: d.daily.map((x) => x.saving), symbol: 'none' },
      ],
    }),
  ];
  const parts = d.parts.slice(0, 15);
  if (parts.length > 0) {
    out.push(
      chart(
        {
          title: { text: d.area.scope === 'city' ? '各区报告量与互认情况' : '各机构报告量与互认情况（前15）', left: 'center', textStyle: { fontSize: 14 } },
          legend: { bottom: 0 },
          grid: { left: 150, right: 30, top: 40, bottom: 50 },
          yAxis: { type: 'category', data: parts.map((p) => p.name).reverse(), axisLabel: { width: 140, overflow: 'truncate' } },
          xAxis: { type: 'value' },
          series: [
            { name: '收到报告', type: 'bar', data: parts.map((p) => p.reports).reverse() },
            { name: '已互认', type: 'bar', data: parts.map((p) => p.recognised).reverse() },
          ],
        },
        680,
        Math.max(220, 60 + parts.length * 26)
      )
    );
  }
  return out;
}

const kindName = (d: BriefingData) => (d.period.kind === 'month' ? '月报' : '周报');

export function briefingTitle(d: BriefingData): string {
  return `${d.area.name}互认数据分析简报（${kindName(d)}）${d.period.label}`;
}

function alertRows(alerts: AlertFollowUp[]): string {
  if (alerts.length === 0) return '<p>本期无机构触发数据质量预警。</p>';
  const rows = alerts.map((a) => {
    const requests = a.requests.length === 0 ? '未下达' : a.requests.map((r) => TASK_STATUS[r.status] ?? r.status).join('、');
    return `<tr><td>${esc(a.name)}</td><td>${esc(MONITOR_NAMES[a.monitor] ?? a.monitor)}（${esc(FLOW_NAMES[a.flow] ?? a.flow)}）</td><td>${LEVEL_NAMES[a.level] ?? a.level}</td><td>${a.status === 'active' ? '预警中' : '已解除'}</td><td>${esc(requests)}</td></tr>`;
  });
  return `<table class="grid"><thead><tr><th>机构</th><th>监控项</th><th>本期最高级别</th><th>当前状态</th><th>整改要求</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The briefing's HTML (self-contained: styles and SVG charts inline, no script, no external resource). */
export function renderBriefingHtml(d: BriefingData): string {
  const f = d.figures;
  const p = d.previousFigures;
  const summary = SUMMARY.map(
    (s) =>
      `<tr><td>${s.label}</td><td class="n" data-figure="${s.figure}">${show(s.kind, f[s.figure])}</td><td class="n" data-previous="${s.figure}">${show(s.kind, p[s.figure])}</td><td class="n">${trend(s.kind, f[s.figure], p[s.figure])}</td></tr>`
  ).join('');
  const partRows = d.parts
    .map((x) => `<tr><td>${esc(x.name)}</td><td class="n">${int(x.reports)}</td><td class="n">${int(x.recognised)}</td><td class="n">${int(x.notRecognised)}</td><td class="n">${pct(x.recognised + x.notRecognised > 0 ? x.recognised / (x.recognised + x.notRecognised) : null)}</td><td class="n">${yuan(x.saving)}</td></tr>`)
    .join('');
  const [c1, c2, c3] = charts(d);
  const title = briefingTitle(d);
  const active = d.alerts.filter((a) => a.status === 'active').length;
  const followed = d.alerts.filter((a) => a.requests.length > 0).length;
  const done = d.alerts.filter((a) => a.requests.some((r) => r.status === 'completed')).length;
  return `<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
@page { size: A4; margin: 16mm 14mm; }
body { font-family: ${FONT}; color: #1f2937; font-size: 13px; line-height: 1.6; max-width: 760px; margin: 0 auto; }
h1 { font-size: 22px; text-align: center; margin: 8px 0 4px; }
.sub { text-align: center; color: #6b7280; margin-bottom: 16px; }
h2 { font-size: 16px; border-left: 4px solid #1d4ed8; padding-left: 8px; margin: 20px 0 8px; }
table.grid { border-collapse: collapse; width: 100%; margin: 6px 0; }
table.grid th, table.grid td { border: 1px solid #d1d5db; padding: 3px 8px; }
table.grid th { background: #eff6ff; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 8px 0; page-break-inside: avoid; }
.note { color: #6b7280; font-size: 11px; }
</style></head>
<body>
<h1>${esc(title)}</h1>
<div class="sub">统计期间：${d.period.from} 至 ${d.period.to}（北京时间）　对比期间：${d.previous.from} 至 ${d.previous.to}</div>
<h2>一、总体情况</h2>
<p>本期${esc(d.area.name)}共收到检查检验报告 ${int(f.reports)} 份，发起互认查询 ${int(f.checks)} 次，已互认 ${int(f.recognised)} 项、不予互认 ${int(f.notRecognised)} 项，互认率 ${pct(f.recognitionRate)}，估算节约费用 ${yuan(f.saving)} 元。</p>
<table class="grid" id="summary"><thead><tr><th>指标</th><th>本期</th><th>上期</th><th>环比</th></tr></thead><tbody>${summary}</tbody></table>
<div class="chart">${c1}</div>
<div class="chart">${c2}</div>
<h2>二、${d.area.scope === 'city' ? '各区情况' : '各机构情况'}</h2>
${d.parts.length ? `<table class="grid"><thead><tr><th>${d.area.scope === 'city' ? '区' : '机构'}</th><th>收到报告</th><th>已互认</th><th>不予互认</th><th>互认率</th><th>节约费用（元）</th></tr></thead><tbody>${partRows}</tbody></table>` : '<p>本期无数据。</p>'}
${c3 ? `<div class="chart">${c3}</div>` : ''}
<h2>三、数据质量预警与整改跟踪</h2>
<p>本期触发预警 ${d.alerts.length} 项（当前仍预警 ${active} 项），已下达整改要求 ${followed} 项，已完成整改 ${done} 项。</p>
${alertRows(d.alerts)}
<h2>四、区块链存证</h2>
<p>本期收到报告版本 ${int(f.chainReceived)} 份，已上链 ${int(f.chainAnchored)} 份，上链覆盖率 ${pct(f.chainCoverage)}；已核验 ${int(f.chainConsistent + f.chainInconsistent)} 份，其中哈希一致 ${int(f.chainConsistent)} 份、不一致 ${int(f.chainInconsistent)} 份，哈希一致率 ${pct(f.hashConsistency)}。</p>
<p class="note">说明：数据来自平台的监控指标报告（MeasureReport：互认使用情况、报告上传及时性、节约费用估算、区块链存证统计），共 ${int(d.sources)} 份。互认率 = 已互认 ÷（已互认 + 不予互认）；及时上传率 = 及时上传的报告 ÷ 有出具时间的报告；节约费用估算 = 已互认项目 × 目录价格，目录未定价的项目不计入；上链覆盖率 = 已上链 ÷ 收到；哈希一致率 = 一致 ÷（一致 + 不一致）。</p>
</body></html>
`;
}
