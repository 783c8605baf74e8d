/**
 * Recognition workload (issue 4): a bulk loader of generated, profile-conformant recognition reports, and the
 * requests of the `recognition-check` and `cds-order-sign` scenarios.
 *
 * Loading a million reports over HTTP (~60 report transactions/s here) would take hours, so the loader writes
 * them through the server's own write and index code (`writeVersions`: resource, resource_history and the six
 * index tables, the index rows from `indexResource`), a few hundred reports per statement, straight into the
 * benchmark's database. What it skips is only per-resource validation and the intake of an original Bundle:
 * first it sends a sample of the same generated reports through the full HTTP path (validation, intake,
 * fingerprint), so a generator that drifts from the profiles fails the run; the bulk-loaded report versions
 * get the `report_version` row intake writes for a report stored without a submitted Bundle (`unanchored`),
 * sealed with the server's record key as intake seals it (`recordKeyFile`).
 *
 * The data: performing institutions with a district and QC qualifications for every catalogue field
 * (covering 广州市), requesting institutions in other districts, patients with national IDs, and reports over
 * two years (denser in recent months), 70 % lab reports (the item and `--report-obs` result Observations of
 * the same catalogue category, some flagged abnormal) and 30 % examination reports (conclusion, no results),
 * with the HR mark on 90 %.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, BundleEntry, DiagnosticReport, Observation, Organization, Patient, Resource } from '@medplum/fhirtypes';
import type { RequestSpec, Sender } from './client.ts';
import { round } from './client.ts';
import { cst, patient as patientSeed, institutions, Rng, type Institution } from './data.ts';
import { REPO_ROOT } from './server.ts';

const BASE = 'https://fhir.huren.gz.cn';
const CATALOGUE = `${BASE}/CodeSystem/recognition-catalogue`;
const NATIONAL = `${BASE}/CodeSystem/nhsa-service-item`;
const DIVISION = `${BASE}/CodeSystem/admin-division`;
const EXT_QC = `${BASE}/StructureDefinition/qc-qualification`;
const EXT_DISTRICT = `${BASE}/StructureDefinition/district`;
const EXT_HR = `${BASE}/StructureDefinition/hr-mark`;
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const REQUESTER_EXTENSION = 'cn.gz.huren.requester';
const DAY = 86_400_000;

/** A catalogue item, from the shipped CodeSystem. */
interface Item {
  code: string;
  display: string;
  kind: string;
  fieldCode: string;
  category: string;
  national?: string;
  loinc?: string;
  windowDays?: number;
}

function catalogueItems(): Item[] {
  const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'terminology/CodeSystem-recognition-catalogue.json'), 'utf8'));
  const out: Item[] = [];
  const walk = (c: any, parents: any[]) => {
    const prop = (name: string) => (c.property ?? []).find((p: any) => p.code === name);
    if (prop('level')?.valueCode === 'item' && prop('status')?.valueCode !== 'retired') {
      out.push({
        code: c.code,
        display: c.display,
        kind: prop('kind')?.valueString,
        fieldCode: parents[1]?.code,
        category: parents[2]?.code,
        national: prop('nationalCode')?.valueCode ?? prop('nationalCode')?.valueString,
        loinc: prop('loinc')?.valueCode,
        windowDays: prop('windowDays')?.valueInteger,
      });
    }
    for (const child of c.concept ?? []) walk(child, [...parents, c]);
  };
  for (const c of cs.concept) walk(c, []);
  return out;
}

export interface RecognitionFixture {
  performers: string[];
  requesters: string[];
  patients: { id: string; nationalId: string }[];
  /** Lab items with a national code (what a HIS orders by). */
  orderable: Item[];
}

export interface LoadSummary {
  reports: number;
  observations: number;
  patients: number;
  organizations: number;
  sampleOverHttp: { reports: number; seconds: number };
  bulk: { seconds: number; reportsPerSecond: number; resourcesPerSecond: number; batchReports: number };
  seconds: number;
}

const EXAM_SECTION: Record<string, string> = { 超声: 'US', 电生理: 'EC', 病理: 'SP' };

function organization(inst: Institution, district: string, fields: string[]): Organization {
  return {
    ...(inst.resource as Organization),
    extension: [
      { url: EXT_DISTRICT, valueCoding: { system: DIVISION, code: district } },
      ...fields.map((f) => ({
        url: EXT_QC,
        extension: [
          { url: 'category', valueCoding: { system: CATALOGUE, code: f } },
          { url: 'coverage', valueCoding: { system: DIVISION, code: '440100' } },
          { url: 'period', valuePeriod: { start: '2020-01-01' } },
        ],
      })),
    ],
  };
}

const DISTRICTS = ['440103', '440104', '440105', '440106', '440111', '440112', '440113', '440114', '440115', '440117', '440118'];

/** Generates one report (and its Observations) with platform ids, for the bulk path and (converted) for HTTP. */
class ReportGenerator {
  private readonly byCategory = new Map<string, Item[]>();
  private readonly lab: Item[];
  private readonly exam: Item[];
  constructor(
    private readonly rng: Rng,
    items: Item[],
    private readonly obsPerReport: number,
    private readonly now = Date.now()
  ) {
    for (const i of items) this.byCategory.set(i.category, [...(this.byCategory.get(i.category) ?? []), i]);
    this.lab = items.filter((i) => i.kind === '检验');
    this.exam = items.filter((i) => i.kind === '检查');
  }

  report(patientId: string, performer: string, n: number): { report: DiagnosticReport; observations: Observation[] } {
    const rng = this.rng;
    const isLab = this.exam.length === 0 || rng.next() < 0.7;
    const item = rng.pick(isLab ? this.lab : this.exam);
    // denser in recent months: P(issued within d days) = sqrt(d / 730)
    const days = 730 * rng.next() ** 2;
    const issuedMs = this.now - days * DAY;
    const subject = { reference: `Patient/${patientId}` };
    const performerRef = [{ reference: `Organization/${performer}` }];
    const observations: Observation[] = [];
    if (isLab) {
      const siblings = (this.byCategory.get(item.category) ?? [item]).filter((i) => i.loinc);
      const lines = [item, ...siblings.filter((s) => s !== item)].filter((i) => i.loinc).slice(0, this.obsPerReport);
      for (const line of lines) {
        const flag = rng.next() < 0.15 ? rng.pick(['H', 'L', 'HH']) : 'N';
        observations.push({
          resourceType: 'Observation',
          id: randomUUID(),
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
          code: { coding: [{ system: 'http://loinc.org', code: line.loinc as string }], text: line.display },
          subject,
          effectiveDateTime: cst(issuedMs - 2 * 3_600_000),
          issued: cst(issuedMs),
          performer: performerRef,
          valueQuantity: { value: round(1 + rng.next() * 9, 2), unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
          interpretation: [{ coding: [{ system: INTERP, code: flag }] }],
          referenceRange: [{ low: { value: 3.5, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' }, high: { value: 5.3, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' } }],
        });
      }
    }
    const section = isLab ? 'LAB' : (EXAM_SECTION[item.fieldCode ? (this.fieldName(item) ?? '') : ''] ?? 'RAD');
    const report: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      id: randomUUID(),
      ...(rng.next() < 0.9 ? { extension: [{ url: EXT_HR, valueString: '粤HR' }] } : {}),
      identifier: [{ system: `https://his.example/${performer}/report-id`, value: `B${n}` }],
      status: 'final',
      category: [{ coding: [{ system: V2_0074, code: section }] }],
      code: {
        coding: [
          { system: CATALOGUE, code: item.code, display: item.display },
          ...(item.national ? [{ system: NATIONAL, code: item.national }] : []),
        ],
        text: item.display,
      },
      subject,
      effectiveDateTime: cst(issuedMs - 3 * 3_600_000),
      issued: cst(issuedMs),
      performer: performerRef,
      ...(observations.length ? { result: observations.map((o) => ({ reference: `Observation/${o.id}` })) } : { conclusion: '未见明显异常。' }),
    };
    return { report, observations };
  }

  private fieldName(item: Item): string | undefined {
    return this.fieldNames.get(item.fieldCode);
  }
  readonly fieldNames = new Map<string, string>();
}

/** The report as a transaction Bundle (urn:uuid links, no ids): what a hospital submits. */
function asTransaction(report: DiagnosticReport, observations: Observation[]): Bundle {
  const urn = (id: string | undefined) => `urn:uuid:${id}`;
  const strip = <T extends Resource>(r: T): T => {
    const { id: _id, ...rest } = r as T & { id?: string };
    return rest as T;
  };
  const entries: BundleEntry[] = [
    {
      fullUrl: urn(report.id),
      resource: strip({ ...report, ...(report.result ? { result: report.result.map((r) => ({ reference: urn(r.reference?.split('/')[1]) })) } : {}) }),
      request: { method: 'POST', url: 'DiagnosticReport' },
    },
    ...observations.map((o) => ({ fullUrl: urn(o.id), resource: strip(o), request: { method: 'POST' as const, url: 'Observation' } })),
  ];
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

function idsOf(body: string): string[] {
  return ((JSON.parse(body) as Bundle).entry ?? []).map((e) => (e.response?.location ?? '').replace(/^.*\/fhir\//, '').split('/')[1]);
}

async function post(client: Sender, body: unknown): Promise<string> {
  const reply = await client.send({ method: 'POST', path: '/fhir', body: JSON.stringify(body), keepBody: true });
  if (reply.status !== 200) throw new Error(`recognition preload: ${reply.status} ${(reply.body ?? '').slice(0, 600)}`);
  return reply.body as string;
}

export interface LoadOptions {
  databaseUrl: string;
  reports: number;
  patients: number;
  obsPerReport: number;
  seed: number;
  batch: number;
  /**
   * Also what intake records for a report submitted as a transaction Bundle: the original (its text, SHA-256
   * and SM3 fingerprint), the version row pointing at it, and the members' versions, row versions and digests
   * (what the sweep checks). Without it, only the version row of a report stored without a Bundle.
   */
  intake?: boolean;
  /**
   * The server's record-seal key file (`<data dir>/record-keys.json`): every bulk-loaded version is sealed as
   * intake seals it (server/provenance/seals.ts), so that the sweep finds the records intact.
   */
  recordKeyFile?: string;
  log: (m: string) => void;
}

/**
 * Loads the recognition data set: institutions over HTTP, a sample of reports over HTTP (validated, with
 * intake), then patients and reports in bulk through the store's write path.
 */
export async function loadRecognition(client: Sender, options: LoadOptions): Promise<{ fixture: RecognitionFixture; summary: LoadSummary }> {
  const t0 = performance.now();
  const rng = new Rng(options.seed ^ 0x5eed);
  const items = catalogueItems();
  const fields = [...new Set(items.map((i) => i.fieldCode))];
  const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'terminology/CodeSystem-recognition-catalogue.json'), 'utf8'));
  const gen = new ReportGenerator(rng, items, options.obsPerReport);
  for (const kind of cs.concept) for (const f of kind.concept ?? []) gen.fieldNames.set(f.code, f.display);

  // 1. institutions: 20 performing (QC-qualified for every field), 10 requesting (no qualification)
  const insts = institutions(20);
  const performers = insts.map((inst, i) => organization(inst, DISTRICTS[i % DISTRICTS.length], fields));
  const requesters = insts.slice(0, 10).map((inst, i) => {
    const o = organization(inst, DISTRICTS[(i + 3) % DISTRICTS.length], []);
    return { ...o, identifier: [{ system: 'http://huren.example/sid/institution-code', value: `REQ${inst.code}` }], name: `${o.name}（申请方）` };
  });
  const orgBundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [...performers, ...requesters].map((resource) => ({ fullUrl: `urn:uuid:${randomUUID()}`, resource, request: { method: 'POST', url: 'Organization' } })),
  };
  const orgIds = idsOf(await post(client, orgBundle));
  const fixture: RecognitionFixture = {
    performers: orgIds.slice(0, performers.length),
    requesters: orgIds.slice(performers.length),
    patients: [],
    orderable: items.filter((i) => i.kind === '检验' && i.national),
  };

  // 2. a sample through the full HTTP path: 20 patients, 40 reports (validation, intake, fingerprint)
  const seeds = Array.from({ length: options.patients }, (_, n) => patientSeed(rng, n, insts));
  const sampleReports = Math.min(40, options.reports);
  const sampleStart = performance.now();
  const samplePatients = seeds.slice(0, Math.min(20, seeds.length));
  const pIds = idsOf(
    await post(client, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: samplePatients.map((s) => ({ fullUrl: `urn:uuid:${randomUUID()}`, resource: s.resource, request: { method: 'POST', url: 'Patient' } })),
    })
  );
  pIds.forEach((id, k) => fixture.patients.push({ id, nationalId: nationalIdOf(samplePatients[k].resource) }));
  for (let n = 0; n < sampleReports; n++) {
    const p = fixture.patients[n % fixture.patients.length];
    const { report, observations } = gen.report(p.id, rng.pick(fixture.performers), n);
    await post(client, asTransaction(report, observations));
  }
  const sampleSeconds = round((performance.now() - sampleStart) / 1000, 1);
  options.log(`  recognition: ${sampleReports} sample reports validated and stored over HTTP in ${sampleSeconds} s`);

  // 3. the rest in bulk, straight through the store's write path
  const { openDatabase } = await import('../server/db/database.ts');
  const { loadDefinitions } = await import('../server/fhir/definitions.ts');
  const { writeVersions } = await import('../server/fhir/store.ts');
  const { fingerprint } = await import('../server/fingerprint/index.ts');
  const { rawDigest } = await import('../server/provenance/intake.ts');
  const { NO_BUNDLE, NO_PROVENANCE } = await import('../server/provenance/records.ts');
  const { sealVersions } = await import('../server/provenance/seals.ts');
  const { RecordKeys } = await import('../server/provenance/record-keys.ts');
  const keys = options.recordKeyFile ? new RecordKeys(options.recordKeyFile) : undefined;
  loadDefinitions();
  const db = await openDatabase({ url: options.databaseUrl, poolSize: 3 });
  const bulkStart = performance.now();
  let resources = 0;
  let observations = sampleReports === 0 ? 0 : 0;
  const stamp = <T extends Resource>(r: T, now: string): T => ({ ...r, meta: { versionId: '1', lastUpdated: now } });
  try {
    // patients
    const rest = seeds.slice(samplePatients.length);
    for (let i = 0; i < rest.length; i += 2000) {
      const now = new Date().toISOString();
      const chunk = rest.slice(i, i + 2000).map((s) => stamp({ ...(s.resource as Patient), id: randomUUID() }, now));
      await db.transaction((sql) => writeVersions(sql, chunk.map((resource) => ({ resource, method: 'POST', isNew: true }))));
      chunk.forEach((p) => fixture.patients.push({ id: p.id as string, nationalId: nationalIdOf(p) }));
      resources += chunk.length;
    }
    options.log(`  recognition: ${fixture.patients.length} patients in ${round((performance.now() - bulkStart) / 1000, 1)} s`);
    // reports: `batch` per statement, two statements in flight (the database works while the next is built)
    const total = options.reports - sampleReports;
    let next = 0;
    let done = 0;
    let lastLog = performance.now();
    const worker = async () => {
      for (;;) {
        const start = next;
        if (start >= total) return;
        const count = Math.min(options.batch, total - start);
        next += count;
        const now = new Date().toISOString();
        const versions: { resource: Resource; method: 'POST'; isNew: true }[] = [];
        const rows: { report_id: string; performer: string }[] = [];
        const originals: { id: string; report_id: string; raw: string; digest: string; fp: string; performer: string }[] = [];
        const members: { report_id: string; type: string; id: string }[] = [];
        for (let k = 0; k < count; k++) {
          const p = fixture.patients[rng.int(0, fixture.patients.length - 1)];
          const performer = rng.pick(fixture.performers);
          const { report, observations: obs } = gen.report(p.id, performer, sampleReports + start + k);
          versions.push({ resource: stamp(report, now), method: 'POST', isNew: true });
          for (const o of obs) versions.push({ resource: stamp(o, now), method: 'POST', isNew: true });
          rows.push({ report_id: report.id as string, performer: `Organization/${performer}` });
          if (options.intake) {
            const bundle = asTransaction(report, obs);
            const raw = JSON.stringify(bundle);
            originals.push({ id: randomUUID(), report_id: report.id as string, raw, digest: rawDigest(raw), fp: fingerprint(bundle, 'sm3'), performer: `Organization/${performer}` });
            members.push({ report_id: report.id as string, type: 'DiagnosticReport', id: report.id as string }, ...obs.map((o) => ({ report_id: report.id as string, type: 'Observation', id: o.id as string })));
          }
          observations += obs.length;
        }
        await db.transaction(async (sql) => {
          await writeVersions(sql, versions);
          if (!options.intake) {
            // what intake records for a report version stored without a submitted Bundle
            await sql.query(
              `INSERT INTO report_version (report_id, version, performer, chain_status, chain_reasons)
               SELECT r.report_id, 1, r.performer, 'unanchored', $2::jsonb
                 FROM jsonb_to_recordset($1::jsonb) AS r(report_id text, performer text)`,
              [JSON.stringify(rows), JSON.stringify([NO_BUNDLE])]
            );
            if (keys) await sealVersions(sql, keys, rows.map((r) => ({ report_id: r.report_id, version: 1 })));
            return;
          }
          // what intake records for a submitted Bundle (server/provenance/intake.ts), a batch per statement; the
          // platform's own anchoring is left out (as with HUREN_PLATFORM_ANCHORING=off): the versions are unanchored
          await sql.query(
            `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id text, report_id text, raw text, digest text, fp text, performer text)),
                  o AS (INSERT INTO report_original (id, raw, raw_exact, raw_digest, alg, fingerprint)
                        SELECT id, raw, true, digest, 'sm3', fp FROM x RETURNING id, xmin::text AS xmin)
             INSERT INTO report_version (report_id, version, original_id, original_xmin, alg, fingerprint, performer, chain_status, chain_reasons)
             SELECT x.report_id, 1, o.id, o.xmin, 'sm3', x.fp, x.performer, 'unanchored', $2::jsonb FROM x JOIN o ON o.id = x.id`,
            [JSON.stringify(originals), JSON.stringify([NO_PROVENANCE])]
          );
          await sql.query(
            `INSERT INTO report_member (report_id, version, type, id, res_version, row_xmin, digest)
             SELECT m.report_id, 1, r.type, r.id, r.version, r.xmin::text, encode(sha256(convert_to(r.content::text, 'UTF8')), 'hex')
               FROM jsonb_to_recordset($1::jsonb) AS m(report_id text, type text, id text) JOIN resource r ON r.type = m.type AND r.id = m.id`,
            [JSON.stringify(members)]
          );
          if (keys) await sealVersions(sql, keys, rows.map((r) => ({ report_id: r.report_id, version: 1 })));
        });
        resources += versions.length;
        done += count;
        const t = performance.now();
        if (t - lastLog > 15_000) {
          lastLog = t;
          const s = (t - bulkStart) / 1000;
          options.log(`  recognition: ${done}/${total} reports, ${Math.round(done / s)} reports/s, ETA ${Math.round(((total - done) * s) / done)} s`);
        }
      }
    };
    await Promise.all([worker(), worker()]);
  } finally {
    await db.close();
  }
  const bulkSeconds = (performance.now() - bulkStart) / 1000;
  const bulkReports = options.reports - sampleReports;
  return {
    fixture,
    summary: {
      reports: options.reports,
      observations,
      patients: fixture.patients.length,
      organizations: orgIds.length,
      sampleOverHttp: { reports: sampleReports, seconds: sampleSeconds },
      bulk: { seconds: round(bulkSeconds, 1), reportsPerSecond: round(bulkReports / bulkSeconds, 1), resourcesPerSecond: round(resources / bulkSeconds, 1), batchReports: options.batch },
      seconds: round((performance.now() - t0) / 1000, 1),
    },
  };
}

function nationalIdOf(p: Patient): string {
  return p.identifier?.find((i) => i.system === 'urn:oid:2.16.156.10011.1.3')?.value as string;
}

/** Reads the fixture of a kept database back (ids of the institutions and patients), to reuse a load. */
export async function fixtureFromDatabase(databaseUrl: string): Promise<RecognitionFixture> {
  const { adminQuery } = await import('./server.ts');
  const orgs = await adminQuery<{ id: string; qc: boolean }>(
    `SELECT id, content::text LIKE '%qc-qualification%' AS qc FROM resource WHERE type = 'Organization' AND NOT deleted ORDER BY created, id`,
    databaseUrl
  );
  const patients = await adminQuery<{ id: string; nid: string }>(
    `SELECT r.id, t.code AS nid FROM resource r JOIN idx_token t ON t.type = 'Patient' AND t.id = r.id AND t.param = 'identifier' AND t.system = 'urn:oid:2.16.156.10011.1.3'
      WHERE r.type = 'Patient' AND NOT r.deleted`,
    databaseUrl
  );
  const items = catalogueItems();
  return {
    performers: orgs.filter((o) => o.qc).map((o) => o.id),
    requesters: orgs.filter((o) => !o.qc).map((o) => o.id),
    patients: patients.map((p) => ({ id: p.id, nationalId: p.nid })),
    orderable: items.filter((i) => i.kind === '检验' && i.national),
  };
}

/** Requests of the recognition scenarios. */
export function recognitionRequests(name: string, fixture: RecognitionFixture, rng: Rng): (i: number) => RequestSpec {
  switch (name) {
    case 'recognition-check':
      return () => {
        const p = rng.pick(fixture.patients);
        return { method: 'GET', path: `/fhir/Patient/${p.id}/$recognition-check?requester=Organization/${rng.pick(fixture.requesters)}` };
      };
    case 'cds-order-sign':
      return () => {
        const p = rng.pick(fixture.patients);
        const orders = [rng.pick(fixture.orderable), rng.pick(fixture.orderable)];
        const body = {
          hook: 'order-sign',
          hookInstance: randomUUID(),
          context: {
            userId: 'Practitioner/bench-doctor',
            patientId: p.id,
            draftOrders: {
              resourceType: 'Bundle',
              type: 'collection',
              entry: orders.map((o, k) => ({
                resource: {
                  resourceType: 'ServiceRequest',
                  id: `ord-${k}`,
                  status: 'draft',
                  intent: 'order',
                  code: { coding: [{ system: NATIONAL, code: o.national, display: o.display }], text: o.display },
                  subject: { reference: `Patient/${p.id}` },
                },
              })),
            },
          },
          prefetch: { patient: { resourceType: 'Patient', id: p.id, identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: p.nationalId }] } },
          extension: { [REQUESTER_EXTENSION]: `Organization/${rng.pick(fixture.requesters)}` },
        };
        return { method: 'POST', path: '/cds-services/duplicate-order-sign', body: JSON.stringify(body) };
      };
  }
  throw new Error(`unknown recognition scenario ${name}`);
}
