/**
 * The monitoring app's JSON API (docs/monitoring.md "API"), behind the same bearer token as everything else;
 * errors are OperationOutcomes with the HTTP status. A caller bound to an institution (a hospital's SMART
 * Backend client) sees only its own institution; the platform's callers see all.
 *
 *   GET  /api/monitoring/overview                              every institution with its alerts and levels
 *   GET  /api/monitoring/institutions/:org/history             its alerts' versions and its improvement requests
 *   GET  /api/monitoring/late?from=&to=&institution=           the late reports (ids and times, no content)
 *   GET  /api/monitoring/usage?from=&to=&scope=institution|district|city   figures per scope and day
 *   POST /api/monitoring/alerts/:flag/requests                 { "description": "…", "due": "2024-06-10" } → Task (整改要求)
 *   GET  /api/monitoring/requests?status=                      the improvement requests (Tasks)
 *   POST /api/monitoring/requests/:task/status                 { "status": "accepted" | "in-progress" | "completed" | "rejected" | "cancelled", "note": "…" }
 *   GET  /api/monitoring/events?district=                      Server-Sent Events: counters per district, as they happen
 *   GET  /api/monitoring/briefings?kind=week|month&area=         the briefings kept (数据分析简报; platform callers, commission administrators)
 *   GET  /api/monitoring/briefings/:id/html|pdf?version=         a briefing's file (503 for a PDF the server could not print)
 *   GET  /api/monitoring/thresholds                            the alert thresholds in force (read only: set in the environment)
 */
import Router from '@koa/router';
import type Koa from 'koa';
import type { Flag, Organization, Task } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import { badRequest, fail } from '../fhir/errors.ts';
import { Repository } from '../fhir/repository.ts';
import { allows } from '../auth/scopes.ts';
import type { Principal } from '../http/auth.ts';
import { readBody, UNSTORABLE_TEXT, type BodyLimits } from '../http/body.ts';
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import type { LiveEvent } from './facts.ts';
import type { BriefingKind } from './briefing-data.ts';
import { briefingFile, HTML, listBriefings, PDF } from './briefing.ts';
import { EXT_AREA, usageRows, type Saving } from './measures.ts';
import type { MonitoringService } from './service.ts';

export const TASK_CODE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/monitoring-task`;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** The institution may move its request along these steps; the platform may cancel an open one. */
const INSTITUTION_STEPS: Record<string, string[]> = {
  requested: ['accepted', 'rejected', 'in-progress', 'completed'],
  accepted: ['in-progress', 'completed'],
  'in-progress': ['completed'],
};
const OPEN = ['requested', 'accepted', 'in-progress'];

export function monitoringApi(db: Database, service: MonitoringService, limits: BodyLimits): Router {
  const router = new Router({ prefix: '/api/monitoring' });
  const principalOf = (ctx: Koa.Context) => ctx.state.principal as Principal;
  const need = (ctx: Koa.Context, type: string, action: 'r' | 'c' | 'u', what: string) => {
    if (!allows(principalOf(ctx).scopes, type, action)) throw fail(403, 'forbidden', `${what} needs system/${type}.${action}`);
  };
  /** The caller's own institution (`Organization/<id>`) when it is bound to one; undefined for the platform. */
  const own = async (ctx: Koa.Context): Promise<string | undefined> => {
    const bound = principalOf(ctx).institution;
    if (!bound) return undefined;
    const resolved = await service.facts.resolveInstitution(bound);
    if (!resolved) throw fail(403, 'forbidden', 'The caller is bound to an institution that is not registered');
    return resolved;
  };
  const query = (ctx: Koa.Context, name: string, known: string[]): string | undefined => {
    for (const k of Object.keys(ctx.query)) if (!known.includes(k)) throw badRequest(`unknown parameter '${k.slice(0, 40)}' (known: ${known.join(', ')})`, k.slice(0, 40));
    const v = ctx.query[name];
    if (Array.isArray(v)) throw badRequest(`${name} may be given only once`, name);
    if (v !== undefined && UNSTORABLE_TEXT.test(v)) throw badRequest(`${name} holds characters that cannot be stored`, name);
    return v === undefined || v === '' ? undefined : v;
  };
  const day = (v: string | undefined, name: string, fallback: string): string => {
    if (v === undefined) return fallback;
    if (!DAY.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) throw badRequest(`${name} must be a date YYYY-MM-DD (Asia/Shanghai), not '${v.slice(0, 30)}'`, name);
    return v;
  };
  const range = (ctx: Koa.Context, known: string[]) => {
    const today = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const to = day(query(ctx, 'to', known), 'to', today);
    const from = day(query(ctx, 'from', known), 'from', to);
    if (from > to) throw badRequest(`from (${from}) is after to (${to})`, 'from');
    if (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`) >= 366 * 86_400_000) throw badRequest('a range covers at most 366 days', 'to');
    return { from, to };
  };
  const institutionParam = (v: string | undefined): string | undefined => {
    if (v === undefined) return undefined;
    const m = /^(?:Organization\/)?([A-Za-z0-9\-.]{1,64})$/.exec(v);
    if (!m) throw badRequest(`institution must be Organization/<id>, not '${v.slice(0, 80)}'`, 'institution');
    return `Organization/${m[1]}`;
  };
  const json = (ctx: Koa.Context, body: unknown, status = 200) => {
    ctx.status = status;
    ctx.body = body;
    ctx.type = 'application/json; charset=utf-8';
  };
  const names = async (institutions: string[]) => {
    const rows = await db.query<{ id: string; content: Organization | string }>(`SELECT id, content FROM resource WHERE type = 'Organization' AND NOT deleted AND id = ANY($1::text[])`, [
      institutions.map((i) => i.slice('Organization/'.length)),
    ]);
    return new Map(rows.map((r) => [`Organization/${r.id}`, (typeof r.content === 'string' ? (JSON.parse(r.content) as Organization) : r.content).name]));
  };

  router.get('/overview', async (ctx) => {
    need(ctx, 'Flag', 'r', 'The monitoring overview');
    query(ctx, '', []);
    const mine = await own(ctx);
    const institutions = await institutionsWithFacts(db, mine);
    const alerts = await db.query<{ institution: string; monitor: string; flow: string; level: number; since: string | null; changed_at: string; flag_id: string }>(
      `SELECT * FROM monitoring_alert WHERE level > 0 AND ($1::text IS NULL OR institution = $1) ORDER BY institution, monitor, flow`,
      [mine ?? null]
    );
    const districts = await service.facts.districtsOf(db, institutions);
    const named = await names(institutions);
    const [state] = await db.query<{ at: string }>(`SELECT at FROM monitoring_state WHERE key = 'evaluation'`);
    json(ctx, {
      evaluatedAt: state ? new Date(state.at).toISOString() : null,
      institutions: institutions.map((institution) => {
        const own = alerts
          .filter((a) => a.institution === institution)
          .map((a) => ({ monitor: a.monitor, flow: a.flow, level: Number(a.level), since: a.since ? new Date(a.since).toISOString() : null, changedAt: new Date(a.changed_at).toISOString(), flag: `Flag/${a.flag_id}` }));
        return { institution, name: named.get(institution) ?? null, district: districts.get(institution), level: Math.max(0, ...own.map((a) => a.level)), alerts: own };
      }),
    });
  });

  router.get('/thresholds', async (ctx) => {
    need(ctx, 'Measure', 'r', 'The monitoring thresholds');
    query(ctx, '', []);
    const c = service.config;
    json(ctx, {
      interruptionMinutes: c.interruption,
      disabledMinutes: c.disabled,
      timelinessRates: c.timelinessRates,
      lateMinutes: c.lateMinutes,
      timelinessWindowHours: c.timelinessWindowHours,
      undecidedHours: c.undecidedHours,
    });
  });

  router.get('/institutions/:org/history', async (ctx) => {
    need(ctx, 'Flag', 'r', 'An institution’s alert history');
    query(ctx, '', []);
    if (!ID.test(ctx.params.org)) throw badRequest(`'${ctx.params.org.slice(0, 70)}' is not a valid organization id`, 'org');
    const institution = `Organization/${ctx.params.org}`;
    const mine = await own(ctx);
    if (mine && mine !== institution) throw fail(403, 'forbidden', 'An institution’s client sees only its own institution');
    const versions = await db.query<{ id: string; version: number; last_updated: string; content: Flag | string }>(
      `SELECT h.id, h.version, h.last_updated, h.content FROM resource_history h JOIN monitoring_alert a ON a.flag_id = h.id
        WHERE h.type = 'Flag' AND a.institution = $1 ORDER BY h.last_updated, h.id, h.version`,
      [institution]
    );
    const tasks = await tasksOf(db, institution);
    json(ctx, {
      institution,
      alerts: versions.map((v) => {
        const flag = typeof v.content === 'string' ? (JSON.parse(v.content) as Flag) : v.content;
        return {
          flag: `Flag/${v.id}`,
          version: Number(v.version),
          recordedAt: new Date(v.last_updated).toISOString(),
          monitor: flag.category?.[0]?.coding?.[0]?.code,
          flow: flag.extension?.find((e) => e.url.endsWith('/monitoring-flow'))?.valueCode,
          level: Number(flag.code?.coding?.[0]?.code ?? 0),
          status: flag.status,
          period: flag.period,
          text: flag.code?.text,
        };
      }),
      requests: tasks.map(taskView),
    });
  });

  router.get('/late', async (ctx) => {
    need(ctx, 'MeasureReport', 'r', 'The late reports');
    const known = ['from', 'to', 'institution'];
    const { from, to } = range(ctx, known);
    const asked = institutionParam(query(ctx, 'institution', known));
    const mine = await own(ctx);
    if (mine && asked && asked !== mine) throw fail(403, 'forbidden', 'An institution’s client sees only its own institution');
    const institution = mine ?? asked;
    const rows = await db.query<{ report_id: string; version: number; institution: string; flow: string; received_at: string; issued_at: string; delay: number }>(
      `SELECT report_id, version, institution, flow, received_at, issued_at, round((extract(epoch FROM (received_at - issued_at)) / 60)::numeric, 1)::float8 AS delay
         FROM monitoring_report
        WHERE received_at >= $1 AND received_at < $2 AND issued_at IS NOT NULL AND received_at - issued_at > make_interval(secs => $3::float8 * 60)
          AND ($4::text IS NULL OR institution = $4)
        ORDER BY received_at, report_id LIMIT 1001`,
      [`${from}T00:00:00+08:00`, new Date(Date.parse(`${to}T00:00:00+08:00`) + 86_400_000).toISOString(), service.config.lateMinutes, institution ?? null]
    );
    json(ctx, {
      from,
      to,
      lateMinutes: service.config.lateMinutes,
      truncated: rows.length > 1000,
      reports: rows.slice(0, 1000).map((r) => ({
        report: `DiagnosticReport/${r.report_id}`,
        version: Number(r.version),
        institution: r.institution,
        flow: r.flow,
        issued: new Date(r.issued_at).toISOString(),
        received: new Date(r.received_at).toISOString(),
        delayMinutes: Number(r.delay),
      })),
    });
  });

  router.get('/usage', async (ctx) => {
    need(ctx, 'MeasureReport', 'r', 'The usage figures');
    const known = ['from', 'to', 'scope'];
    const { from, to } = range(ctx, known);
    const scope = query(ctx, 'scope', known) ?? 'institution';
    if (!['institution', 'district', 'city'].includes(scope)) throw badRequest('scope must be institution, district or city', 'scope');
    const mine = await own(ctx);
    if (mine && scope !== 'institution') throw fail(403, 'forbidden', 'An institution’s client sees only its own institution');
    const rows = await usageRows(db, service.facts, service.config, from, to, scope as 'institution' | 'district' | 'city', mine);
    json(ctx, { from, to, scope, timeZone: 'Asia/Shanghai', saving: SAVING_NOTE, rows: rows.map(({ scope: _s, saving, ...r }) => ({ ...r, saving: savingView(saving) })) });
  });

  router.post('/alerts/:flag/requests', async (ctx) => {
    need(ctx, 'Task', 'c', 'An improvement request');
    if (!ID.test(ctx.params.flag)) throw badRequest(`'${ctx.params.flag.slice(0, 70)}' is not a valid Flag id`, 'flag');
    if (principalOf(ctx).institution) throw fail(403, 'forbidden', 'Only the platform (not an institution’s client) sends improvement requests');
    const body = (await readBody(ctx, limits)) as Record<string, unknown> | undefined;
    if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) throw badRequest('Send a JSON object: { "description": "…", "due": "2024-06-10" }');
    const unknown = Object.keys(body ?? {}).find((k) => k !== 'description' && k !== 'due');
    if (unknown) throw badRequest(`unknown member '${unknown.slice(0, 40)}' (known: description, due)`, unknown.slice(0, 40));
    if (body?.description !== undefined && (typeof body.description !== 'string' || body.description.length > 2000)) throw badRequest('description must be a string of at most 2000 characters', 'description');
    if (body?.due !== undefined && (typeof body.due !== 'string' || !DAY.test(body.due))) throw badRequest('due must be a date YYYY-MM-DD', 'due');
    const task = await new Repository(db).transaction(async (repo) => {
      const flags = (await repo.readMany('Flag', [ctx.params.flag])) as Flag[];
      const flag = flags[0];
      if (!flag || !flag.identifier?.some((i) => i.system === `${CANONICAL_BASE}/monitoring-alert`)) throw fail(404, 'not-found', `No monitoring alert Flag/${ctx.params.flag}`);
      if (flag.status !== 'active') throw fail(409, 'conflict', `Flag/${flag.id} is no longer active: the alert cleared`);
      const institution = flag.subject?.reference as string;
      const now = new Date().toISOString();
      const created = await repo.create({
        resourceType: 'Task',
        status: 'requested',
        intent: 'order',
        priority: Number(flag.code?.coding?.[0]?.code ?? 0) >= 3 ? 'urgent' : 'routine',
        code: { coding: [{ system: TASK_CODE_SYSTEM, code: 'improvement-request', display: '整改要求' }] },
        description: (body?.description as string | undefined) ?? `请核查并整改：${flag.code?.text ?? ''}`,
        focus: { reference: `Flag/${flag.id}` },
        for: { reference: institution },
        owner: { reference: institution } as Task['owner'],
        authoredOn: now,
        lastModified: now,
        ...(body?.due ? { restriction: { period: { end: `${body.due}T23:59:59+08:00` } } } : {}),
      } as Task);
      return created.resource as Task;
    });
    json(ctx, taskView(task), 201);
  });

  router.get('/requests', async (ctx) => {
    need(ctx, 'Task', 'r', 'The improvement requests');
    const status = query(ctx, 'status', ['status']);
    const mine = await own(ctx);
    const tasks = (await tasksOf(db, mine)).filter((t) => !status || t.status === status);
    json(ctx, { total: tasks.length, requests: tasks.map(taskView) });
  });

  router.post('/requests/:task/status', async (ctx) => {
    need(ctx, 'Task', 'u', 'Answering an improvement request');
    if (!ID.test(ctx.params.task)) throw badRequest(`'${ctx.params.task.slice(0, 70)}' is not a valid Task id`, 'task');
    const body = (await readBody(ctx, limits)) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('Send a JSON object: { "status": "accepted", "note": "…" }');
    const unknown = Object.keys(body).find((k) => k !== 'status' && k !== 'note');
    if (unknown) throw badRequest(`unknown member '${unknown.slice(0, 40)}' (known: status, note)`, unknown.slice(0, 40));
    if (typeof body.status !== 'string') throw badRequest('status is required', 'status');
    if (body.note !== undefined && (typeof body.note !== 'string' || body.note.length > 2000 || UNSTORABLE_TEXT.test(body.note))) throw badRequest('note must be a string of at most 2000 characters', 'note');
    const mine = await own(ctx);
    const task = await new Repository(db).transaction(async (repo) => {
      const [current] = (await repo.readMany('Task', [ctx.params.task])) as Task[];
      if (!current || current.code?.coding?.[0]?.system !== TASK_CODE_SYSTEM) throw fail(404, 'not-found', `No improvement request Task/${ctx.params.task}`);
      const owner = current.owner?.reference;
      if (mine && mine !== owner) throw fail(404, 'not-found', `No improvement request Task/${ctx.params.task}`);
      const allowed = mine ? (INSTITUTION_STEPS[current.status] ?? []) : OPEN.includes(current.status) ? ['cancelled'] : [];
      if (!allowed.includes(body.status as string)) {
        throw fail(409, 'conflict', `${mine ? 'The institution' : 'The platform'} cannot move a request from '${current.status}' to '${String(body.status).slice(0, 30)}'${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`, 'status');
      }
      const now = new Date().toISOString();
      const note = body.note ? [...(current.note ?? []), { text: body.note as string, time: now, authorReference: mine ? { reference: mine } : undefined }] : current.note;
      const next: Task = {
        ...current,
        status: body.status as Task['status'],
        lastModified: now,
        ...(note ? { note: note.map((n) => (n.authorReference ? n : { text: n.text, time: n.time })) } : {}),
        ...(body.status === 'completed' ? { executionPeriod: { start: current.authoredOn, end: now } } : {}),
      };
      return (await repo.update(next)).resource as Task;
    });
    json(ctx, taskView(task));
  });

  router.get('/events', async (ctx) => {
    need(ctx, 'MeasureReport', 'r', 'The event stream');
    const district = query(ctx, 'district', ['district']);
    if (district !== undefined && !/^\d{6}$|^unknown$/.test(district)) throw badRequest('district must be a GB/T 2260 code (6 digits)', 'district');
    // the answer is written by hand (not a Koa body): it stays open until the client goes
    ctx.status = 200;
    ctx.respond = false;
    const res = ctx.res;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no', connection: 'keep-alive' });
    const send = (event: string, data: unknown) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const listener = (e: LiveEvent) => {
      if (!district || e.district === district) send('counters', { at: new Date().toISOString(), ...e });
    };
    service.facts.bus.on('event', listener);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const close = () => {
      clearInterval(heartbeat);
      service.facts.bus.off('event', listener);
      if (!res.writableEnded) res.end();
    };
    ctx.req.on('close', close);
    res.on('close', close);
    send('ready', { counters: ['reports', 'checks', 'recognitions', 'anchors', 'alerts'], ...(district ? { district } : {}) });
  });
  // the briefings' readers: the platform's callers with the DocumentReference read scope, and the health
  // commission's administrators (the app's 简报 page) — through this API only: their role holds no
  // DocumentReference scope, as the FHIR DocumentReference type could carry other (personal) documents
  const briefingReader = async (ctx: Koa.Context) => {
    const p = principalOf(ctx);
    if (!(p.kind === 'user' && p.roles?.includes('commission-admin'))) need(ctx, 'DocumentReference', 'r', 'The briefings');
    if (p.institution) throw fail(403, 'forbidden', 'Briefings cover a district or the city: an institution’s client cannot read them');
  };

  router.get('/briefings', async (ctx) => {
    await briefingReader(ctx);
    const known = ['kind', 'area'];
    const kind = query(ctx, 'kind', known);
    if (kind !== undefined && kind !== 'week' && kind !== 'month') throw badRequest('kind must be week or month', 'kind');
    const area = query(ctx, 'area', known);
    if (area !== undefined && !/^\d{6}$/.test(area)) throw badRequest('area must be a GB/T 2260 code (6 digits)', 'area');
    const documents = await listBriefings(db, { kind: kind as BriefingKind | undefined, area });
    json(ctx, {
      total: documents.length,
      briefings: documents.map((d) => ({
        document: `DocumentReference/${d.id}`,
        version: Number(d.meta?.versionId ?? 1),
        title: d.description,
        kind: d.type?.coding?.[0]?.code?.replace('briefing-', ''),
        period: d.identifier?.[0]?.value?.split('|')[1],
        area: d.extension?.find((e) => e.url === EXT_AREA)?.valueCoding?.code,
        from: d.context?.period?.start,
        to: d.context?.period?.end,
        date: d.date,
        files: (d.content ?? []).map((c) => ({ contentType: c.attachment.contentType, url: c.attachment.url, size: c.attachment.size })),
      })),
    });
  });

  router.get('/briefings/:id/:format', async (ctx) => {
    await briefingReader(ctx);
    if (!ID.test(ctx.params.id)) throw badRequest(`'${ctx.params.id.slice(0, 70)}' is not a valid DocumentReference id`, 'id');
    const format = ctx.params.format;
    if (format !== 'html' && format !== 'pdf') throw fail(404, 'not-found', `No such briefing file format '${format.slice(0, 20)}' (html or pdf)`);
    const v = query(ctx, 'version', ['version']);
    if (v !== undefined && !/^[1-9]\d{0,8}$/.test(v)) throw badRequest(`version must be a positive whole number, not '${v.slice(0, 20)}'`, 'version');
    const contentType = format === 'pdf' ? PDF : HTML;
    const file = await briefingFile(db, ctx.params.id, contentType, v === undefined ? undefined : Number(v));
    if (!file) {
      const html = await briefingFile(db, ctx.params.id, HTML, v === undefined ? undefined : Number(v));
      if (html && format === 'pdf') throw fail(503, 'transient', service.printer.available() ? 'This version of the briefing has no PDF (printing failed); make the briefing again' : service.printer.why());
      throw fail(404, 'not-found', `No briefing DocumentReference/${ctx.params.id}${v ? ` version ${v}` : ''}`);
    }
    ctx.status = 200;
    ctx.type = format === 'pdf' ? PDF : 'text/html; charset=utf-8';
    ctx.set('content-disposition', `${format === 'pdf' ? 'attachment' : 'inline'}; filename="${ctx.params.id}.${format}"`);
    ctx.set('x-briefing-version', String(file.version));
    ctx.body = file.data;
  });
  return router;
}

/** How the saving is estimated (the API says it with the figures). */
export const SAVING_NOTE = { counted: true, currency: 'CNY', note: '节约费用估算 = 已互认项目 × 目录价格（元）；目录未定价的项目不计入' } as const;

export function savingView(s: Saving) {
  return { yuan: s.fen / 100, recognisedItems: s.items, pricedItems: s.priced };
}

/**
 * The institutions with any monitoring fact or alert (or only `mine`): a skip scan of the institution indexes
 * (one index probe per institution), not a read of every fact.
 */
async function institutionsWithFacts(db: Database, mine: string | undefined): Promise<string[]> {
  const skip = (table: string) =>
    `(WITH RECURSIVE i AS ((SELECT institution FROM ${table} WHERE $1::text IS NULL OR institution = $1 ORDER BY institution LIMIT 1)
       UNION ALL SELECT (SELECT t.institution FROM ${table} t WHERE t.institution > i.institution AND ($1::text IS NULL OR t.institution = $1) ORDER BY t.institution LIMIT 1) FROM i WHERE i.institution IS NOT NULL)
     SELECT institution FROM i WHERE institution IS NOT NULL)`;
  const rows = await db.query<{ institution: string }>(
    `${skip('monitoring_report')} UNION ${skip('monitoring_event')} UNION SELECT institution FROM monitoring_alert WHERE $1::text IS NULL OR institution = $1 ORDER BY 1`,
    [mine ?? null]
  );
  return rows.map((r) => r.institution);
}

async function tasksOf(db: Database, institution: string | undefined): Promise<Task[]> {
  const rows = await db.query<{ content: Task | string }>(
    `SELECT content FROM resource WHERE type = 'Task' AND NOT deleted AND content->'code'->'coding'->0->>'system' = $1
        AND ($2::text IS NULL OR content->'owner'->>'reference' = $2) ORDER BY created, id`,
    [TASK_CODE_SYSTEM, institution ?? null]
  );
  return rows.map((r) => (typeof r.content === 'string' ? (JSON.parse(r.content) as Task) : r.content));
}

function taskView(t: Task) {
  return {
    task: `Task/${t.id}`,
    status: t.status,
    institution: t.owner?.reference,
    alert: t.focus?.reference,
    description: t.description,
    authoredOn: t.authoredOn,
    lastModified: t.lastModified,
    due: t.restriction?.period?.end,
    notes: (t.note ?? []).map((n) => ({ text: n.text, time: n.time, by: n.authorReference?.reference })),
  };
}
