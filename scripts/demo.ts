/**
 * `npm run demo` — the mission in one command (docs/running.md "The demo"): loads a small generated city
 * (scripts/lib/demo-city.ts: hospitals in four Guangzhou districts with their QC qualifications, patients,
 * fresh / expired / non-HR reports, an examination, a local dictionary with an approved mapping) into a running
 * platform, has the platform anchor it on the chain now, and prints three ready-to-paste curl calls: a
 * recognisable result ($recognition-check), a duplicate order ($duplicate-check) and a verified chain anchor
 * ($verify consistent). Loading twice on one day changes nothing (conditional updates, whole-day dates).
 *
 *   npm run demo                          the server at HUREN_URL (default http://127.0.0.1:8080)
 *   npm run demo -- --url http://127.0.0.1:8081
 *   npm run demo -- --embedded            starts a platform in this process (in memory, PORT or 8080; its
 *                                         chain in a temporary directory) and keeps it running for the
 *                                         calls until Ctrl-C
 *
 * The token: HUREN_TOKEN, else (a server on this machine) the generated bootstrap token of a fresh `npm start`,
 * `$HUREN_DATA_DIR/bootstrap-token` (default ./data). Once that token has created the first security
 * administrator it is gone: set HUREN_TOKEN then (an operator-set HUREN_BOOTSTRAP_TOKEN, or an access token
 * with system/*.*).
 * Exit codes: 0 loaded (the calls printed); 2 usage; 3 failed (no server, refused token, a refused upload).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.ts';
import { cityBundle, HOSPITALS, ITEM, LOCAL_MAP_ID, localMap, NATIONAL_ID, ORG_SYSTEM, PATIENTS, REPORT_SYSTEM, REPORTS, REQUESTER, reportBundle } from './lib/demo-city.ts';

const USAGE = 'usage: npm run demo -- [--url URL] [--embedded]';
export const EXIT = { ok: 0, usage: 2, failed: 3 } as const;

class DemoError extends Error {}

interface Target {
  url: string;
  token: string;
  /** How the printed calls name the token: a shell expression (never the secret itself, unless in memory). */
  tokenExpr: string;
}

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, { values: ['--url'], booleans: ['--embedded', '--help'] });
    if (args.positionals.length > 0) throw new Error(`unexpected argument ${args.positionals[0]}`);
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (args.flags.has('--help')) {
    out.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  let stop: (() => Promise<void>) | undefined;
  try {
    let target: Target;
    if (args.flags.has('--embedded')) {
      const embedded = await startEmbedded();
      stop = embedded.close;
      target = embedded.target;
      out.write(`an embedded platform (in memory) listens at ${target.url}\n`);
    } else target = localTarget(args.values.get('--url') ?? process.env.HUREN_URL ?? 'http://127.0.0.1:8080');
    const loaded = await load(target, (line) => out.write(`${line}\n`));
    out.write(calls(target, loaded));
    if (stop) {
      out.write('\nthe embedded platform keeps running for these calls; Ctrl-C stops it (and forgets everything)\n');
      await new Promise<void>((resolveStop) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolveStop());
      });
      await stop();
    }
    return EXIT.ok;
  } catch (e) {
    await stop?.().catch(() => undefined);
    err.write(`demo failed: ${(e as Error).message}\n`);
    return EXIT.failed;
  }
}

/** The server to load into and its token. */
function localTarget(raw: string): Target {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DemoError(`'${raw}' is not a URL (HUREN_URL or --url)`);
  }
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/fhir$/, '')}`;
  if (process.env.HUREN_TOKEN) return { url: base, token: process.env.HUREN_TOKEN, tokenExpr: '$HUREN_TOKEN' };
  const dataDir = resolve(process.env.HUREN_DATA_DIR ?? './data');
  const file = join(dataDir, 'bootstrap-token');
  if (existsSync(file)) return { url: base, token: readFileSync(file, 'utf8').trim(), tokenExpr: `$(cat ${file})` };
  if (existsSync(`${file}.used`)) {
    throw new DemoError(`the bootstrap token of ${dataDir} created the first security administrator and is gone: set HUREN_TOKEN (an operator-set HUREN_BOOTSTRAP_TOKEN, or an access token with system/*.*)`);
  }
  throw new DemoError(`no token: set HUREN_TOKEN, or run the demo beside the server's data directory (${file} is not there; HUREN_DATA_DIR)`);
}

async function startEmbedded(): Promise<{ target: Target; close: () => Promise<void> }> {
  const { loadConfig } = await import('../server/config.ts');
  const { start } = await import('../server/app.ts');
  const token = randomBytes(16).toString('hex');
  // nothing kept: the store in memory, the chain and the keys in a directory of its own, removed at the end
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-demo-'));
  const config = loadConfig(process.env, { inMemory: true, dataDir, bootstrapToken: token, logLevel: (process.env.LOG_LEVEL as 'warn') ?? 'warn' });
  const huren = await start(config).catch((e) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  return {
    target: { url: huren.url, token, tokenExpr: token },
    close: async () => {
      await huren.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

interface Loaded {
  patient: string;
  requester: string;
  report: string;
  verify: string;
}

async function load(t: Target, say: (line: string) => void): Promise<Loaded> {
  const fhir = async (path: string, init: { method?: string; body?: unknown } = {}): Promise<any> => {
    let res: Response;
    try {
      res = await fetch(`${t.url}/fhir/${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${t.token}`, accept: 'application/fhir+json', ...(init.body ? { 'content-type': 'application/fhir+json' } : {}) },
        ...(init.body ? { body: JSON.stringify(init.body) } : {}),
      });
    } catch (e) {
      throw new DemoError(`no server answers at ${t.url} (${(e as Error).message}): start one with npm start, or use npm run demo -- --embedded`);
    }
    const body = (await res.json().catch(() => undefined)) as any;
    if (res.status === 401 || res.status === 403) throw new DemoError(`${t.url} refused the token (${res.status}): ${issues(body)}`);
    if (res.status >= 300) throw new DemoError(`${init.method ?? 'GET'} ${path.split('?')[0]}: ${res.status} ${issues(body)}`);
    return body;
  };
  const idOf = async (type: string, query: string): Promise<string> => {
    const found = await fhir(`${type}?${query}&_elements=id`);
    const id = found.entry?.[0]?.resource?.id;
    if (!id) throw new DemoError(`${type}?${query} found nothing after loading`);
    return id;
  };

  await fhir('metadata');
  await fhir('', { method: 'POST', body: cityBundle() });
  say(`loaded ${HOSPITALS.length} hospitals (越秀, 天河, 番禺, 荔湾 with their QC qualifications) and ${PATIENTS.length} patients`);
  const panyu = await idOf('Organization', `identifier=${encodeURIComponent(`${ORG_SYSTEM}|demo-panyu`)}`);
  await fhir(`ConceptMap/${LOCAL_MAP_ID}`, { method: 'PUT', body: localMap(panyu) });
  await fhir(`ConceptMap/${LOCAL_MAP_ID}/$entry-status`, {
    method: 'POST',
    body: { resourceType: 'Parameters', parameter: [{ name: 'code', valueCode: 'LIS001' }, { name: 'status', valueCode: 'approved' }, { name: 'comment', valueString: '演示：对照已核对' }] },
  });
  say('loaded the 番禺 hospital’s local dictionary map; LIS001 (血常规) → 血细胞分析 is approved');
  for (const r of REPORTS) await fhir('', { method: 'POST', body: reportBundle(r) });
  say(`loaded ${REPORTS.length} reports: fresh 血钾 (越秀), expired 总蛋白, 血氯 without the HR mark (天河), a CT (天河), a 血常规 coded LIS001 (番禺)`);

  // the platform anchors what waits in its outbox (HUREN_ANCHOR_CRON would, after HUREN_PLATFORM_ANCHOR_DELAY_SECONDS)
  const anchorRes = await fetch(`${t.url}/api/provenance/anchor`, { method: 'POST', headers: { authorization: `Bearer ${t.token}` } });
  const anchored = (await anchorRes.json().catch(() => undefined)) as any;
  if (anchorRes.status !== 200) throw new DemoError(`anchoring: ${anchorRes.status} ${issues(anchored)}`);
  say(`anchored on the chain now: ${anchored.records} record(s) in ${anchored.anchored} transaction(s)${anchored.failed ? `, ${anchored.failed} batch(es) failed and will be retried` : ''}`);

  const patient = await idOf('Patient', `identifier=${encodeURIComponent(`${NATIONAL_ID}|${PATIENTS[0]!.key}`)}`);
  const requester = await idOf('Organization', `identifier=${encodeURIComponent(`${ORG_SYSTEM}|${REQUESTER}`)}`);
  const report = await idOf('DiagnosticReport', `identifier=${encodeURIComponent(`${REPORT_SYSTEM}|demo-k-fresh`)}`);
  const verified = await fhir(`DiagnosticReport/${report}/$verify`);
  const status = verified.parameter?.find((p: any) => p.name === 'status')?.valueCode;
  say(
    status === 'consistent'
      ? 'the fresh 血钾 report is anchored and its hash is consistent with the chain'
      : `the fresh 血钾 report is ${status} on the chain: the anchoring job (HUREN_ANCHOR_CRON, every 10 minutes) will anchor it; call (c) says consistent once it has`
  );
  return { patient, requester, report, verify: status };
}

function issues(body: any): string {
  return (body?.issue ?? []).map((i: any) => i.details?.text ?? i.diagnostics ?? i.code).join('; ') || 'no details';
}

/** The three calls, ready to paste (the token as a shell expression; the URLs in single quotes because of `$`). */
function calls(t: Target, l: Loaded): string {
  const auth = `-H "Authorization: Bearer ${t.tokenExpr}"`;
  const order = {
    resourceType: 'Parameters',
    parameter: [
      {
        name: 'order',
        resource: { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { coding: [{ system: ITEM.potassium.system, code: ITEM.potassium.code }], text: '血钾' }, subject: { reference: `Patient/${l.patient}` } },
      },
      { name: 'requester', valueReference: { reference: `Organization/${l.requester}` } },
    ],
  };
  return [
    '',
    'Three calls that show the mission (paste them into a shell):',
    '',
    '(a) a recognisable result: the patient at 荔湾 has a fresh 血钾 from 越秀 and a 血常规 from 番禺 (through its approved local code) — exists = true, with the days left',
    `curl -s ${auth} '${t.url}/fhir/Patient/${l.patient}/$recognition-check?requester=Organization/${l.requester}'`,
    '',
    '(b) a duplicate order: 荔湾 orders 血钾 again — item.duplicate = true, with the matching report',
    `curl -s -X POST ${auth} -H 'Content-Type: application/fhir+json' '${t.url}/fhir/ServiceRequest/$duplicate-check' -d '${JSON.stringify(order)}'`,
    '',
    `(c) a verified chain anchor: the 血钾 report's fingerprint on the chain — status = consistent${l.verify === 'consistent' ? '' : ' (once the anchoring job has run)'}`,
    `curl -s ${auth} '${t.url}/fhir/DiagnosticReport/${l.report}/$verify'`,
    '',
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
