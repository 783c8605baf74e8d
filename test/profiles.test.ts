/**
 * The platform's profiles, extensions and search parameters (profiles/, issue 3):
 * - the committed StructureDefinitions are exactly what scripts/build-profiles.ts generates from
 *   profiles/src, with the canonical URLs of server/profiles/canonical.ts;
 * - every example in profiles/examples is valid, through $validate and by being stored;
 * - a write claiming a profile is validated against it: broken variants are refused (400) with FHIRPath
 *   expressions, and $validate reports the same;
 * - the recognition records the recognition service writes conform to the recognition-record profile;
 * - the project's SearchParameters are indexed and searchable, and advertised with the profiles in the
 *   CapabilityStatement; the conformance resources are published at their canonical URLs.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { buildProfiles, coreDefinition, PROFILES_DIR, readSources } from '../scripts/build-profiles.ts';
import { fingerprint, CHAIN_ANCHOR_URL, readChainAnchor } from '../server/fingerprint/index.ts';
import { verifyAnchorProof } from '../server/merkle/anchor.ts';
import { ADMIN_DIVISION_SYSTEM, EXT, PROFILE } from '../server/profiles/canonical.ts';
import { EXAMPLES_DIR, projectDefinition, projectSearchParameters, projectStructureDefinitions } from '../server/fhir/profiles/load.ts';
import { projectOperationDefinitions, publishProfiles } from '../server/profiles/publish.ts';
import { generateSnapshot, SnapshotError } from '../server/fhir/profiles/snapshot.ts';
import { validateAgainstProfile } from '../server/fhir/profiles/validate.ts';
import { checkResource, loadValidation } from '../server/fhir/validate.ts';
import { decisionMitigation, reminder } from '../server/recognition/records.ts';
import { CATALOGUE_SYSTEM, DECISION_SYSTEM, REASON_SYSTEM, RECORD_KIND_SYSTEM } from '../server/terminology/canonical.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const SP_BASE = 'https://fhir.huren.gz.cn/SearchParameter/';
type Json = any;

const examples = new Map<string, Json>(
  readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(`${EXAMPLES_DIR}${f}`, 'utf8'))])
);
const example = (file: string): Json => structuredClone(examples.get(file));

let s: TestServer;
test.before(async () => {
  s = await startTestServer();
  // the referenced examples exist, so that the intake of the chain Provenance finds its report
  for (const file of ['Patient-example-chen.json', 'Organization-example-gy1.json', 'Organization-example-lw.json', 'Observation-example-wbc.json', 'Observation-example-hgb.json', 'DiagnosticReport-example-cbc.json', 'DiagnosticReport-example-ultrasound.json', 'DetectedIssue-example-encounter-reminder.json', 'DetectedIssue-example-duplicate-reminder.json']) {
    // (the records are stored here too, so that the search test, which runs concurrently, finds them)
    const r = example(file);
    const res = await s.fhir(`${r.resourceType}/${r.id}`, { method: 'PUT', json: r });
    if (res.status !== 201 && res.status !== 200) throw new Error(`${file}: ${res.status} ${await res.text()}`);
  }
});
test.after.always(async () => {
  await s?.close();
});

const errorsOf = (issues: OperationOutcomeIssue[] | undefined) => (issues ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
const show = (issues: OperationOutcomeIssue[]) => issues.map((i) => `${i.details?.text} @ ${i.expression?.join(',')}`).join('\n');

async function validate(resource: Json): Promise<OperationOutcomeIssue[]> {
  const res = await s.fhir(`${resource.resourceType}/$validate`, { method: 'POST', json: resource });
  const body = (await res.json()) as OperationOutcome;
  if (res.status !== 200) throw new Error(`$validate answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return body.issue ?? [];
}

// ---------------------------------------------------------------------------------------------------
// the definitions

test('the committed StructureDefinitions are the generator output of profiles/src', (t) => {
  const built = buildProfiles();
  const committed = readdirSync(PROFILES_DIR).filter((f) => f.startsWith('StructureDefinition-')).sort();
  t.deepEqual(committed, [...built.keys()].sort());
  for (const [file, text] of built) t.is(readFileSync(join(PROFILES_DIR, file), 'utf8'), text, `${file} differs: run npx tsx scripts/build-profiles.ts`);
  t.is(buildProfiles().get('StructureDefinition-recognition-record.json'), built.get('StructureDefinition-recognition-record.json'), 'deterministic');
});

test('every conformance resource the server publishes is valid R4 (the StructureDefinitions are published without re-validation)', (t) => {
  const published: Resource[] = [...projectStructureDefinitions(), ...projectSearchParameters(), ...projectOperationDefinitions()];
  t.true(published.length >= 20);
  for (const r of published) {
    const issues = checkResource(r);
    t.deepEqual(errorsOf(issues), [], `${r.resourceType}/${r.id}:\n${show(issues)}`);
  }
});

test('canonical URLs: every profile and extension of canonical.ts is defined, chain-anchor as the fingerprint contract names it', (t) => {
  for (const url of [...Object.values(PROFILE), ...Object.values(EXT)]) {
    const sd = projectDefinition(url);
    t.truthy(sd, url);
    t.is(sd?.derivation, 'constraint');
    t.true((sd?.snapshot?.element.length ?? 0) >= (sd?.differential?.element.length ?? 0), url);
  }
  t.is(EXT.chainAnchor, CHAIN_ANCHOR_URL);
  t.deepEqual(
    Object.values(PROFILE).map((u) => projectDefinition(u)?.type),
    ['DiagnosticReport', 'Observation', 'Provenance', 'DetectedIssue', 'Organization']
  );
  // the chain-anchor layout of docs/fingerprint.md: part → value type and cardinality
  const ca = projectDefinition(EXT.chainAnchor) as StructureDefinition;
  const part = (name: string) => {
    const value = ca.snapshot?.element.find((e) => e.id === `Extension.extension:${name}.value[x]`);
    const slice = ca.snapshot?.element.find((e) => e.id === `Extension.extension:${name}`);
    return `${value?.type?.map((x) => x.code).join('|')} ${slice?.min}..${slice?.max}`;
  };
  t.deepEqual(
    ['algorithm', 'fingerprint', 'ledger', 'transaction', 'height', 'leafIndex', 'treeSize', 'path', 'root'].map(part),
    ['code 1..1', 'string 1..1', 'string 1..1', 'string 1..1', 'unsignedInt 1..1', 'unsignedInt 0..1', 'positiveInt 0..1', 'string 0..*', 'string 0..1']
  );
  // qc-qualification: category, coverage (GB/T 2260, 1..*), period
  const qc = projectDefinition(EXT.qcQualification) as StructureDefinition;
  const coverage = qc.snapshot?.element.find((e) => e.id === 'Extension.extension:coverage.value[x]') as Json;
  t.is(coverage?.patternCoding?.system, ADMIN_DIVISION_SYSTEM);
  t.is((qc.snapshot?.element.find((e) => e.id === 'Extension.extension:category.value[x]') as Json)?.patternCoding?.system, CATALOGUE_SYSTEM);
});

test('snapshot generation: slices follow their element, extension slices carry the url, looser or unknown constraints are refused', (t) => {
  const dr = projectDefinition(PROFILE.diagnosticReport) as StructureDefinition;
  const ids = dr.snapshot?.element.map((e) => e.id) ?? [];
  t.is(ids.indexOf('DiagnosticReport.extension:hrMark'), ids.indexOf('DiagnosticReport.extension') + 1);
  t.is((dr.snapshot?.element.find((e) => e.id === 'DiagnosticReport.extension:hrMark.url') as Json)?.fixedUri, EXT.hrMark);
  t.is(dr.snapshot?.element.find((e) => e.id === 'DiagnosticReport.issued')?.min, 1);
  // base metadata of core elements is kept, constraints are added with their source
  const root = dr.snapshot?.element[0];
  t.true(root?.constraint?.some((c) => c.key === 'dom-2'));
  t.is(root?.constraint?.find((c) => c.key === 'hr-dr-1')?.source, PROFILE.diagnosticReport);

  const src = readSources().find((d) => d.url === PROFILE.observation) as StructureDefinition;
  const broken = (element: Json) => ({ ...src, differential: { element: [...(src.differential?.element ?? []), element] } });
  const message = (d: StructureDefinition) => t.throws(() => generateSnapshot(d, coreDefinition), { instanceOf: SnapshotError })?.message ?? '';
  t.regex(message(broken({ id: 'Observation.subject', path: 'Observation.subject', max: '*' })), /above the base max/);
  t.regex(message(broken({ id: 'Observation.status', path: 'Observation.status', min: 0 })), /below the base min/);
  t.regex(message(broken({ id: 'Observation.colour', path: 'Observation.colour', min: 1 })), /not (in the base|defined)/);
  t.regex(message(broken({ id: 'Observation.value[x]', path: 'Observation.value[x]', type: [{ code: 'Money' }] })), /not one of the base types/);
  t.regex(message(broken({ id: 'Observation.code:x', path: 'Observation.code', sliceName: 'x' })), /not sliced/);
});

test('medplum 4.5 with these snapshots: slice counts of a present array work, absent slices and backbone children are not checked (hence profiles/validate.ts)', (t) => {
  loadValidation();
  const profile = projectDefinition(PROFILE.recognitionRecord) as StructureDefinition;
  const medplum = (r: Json) => {
    try {
      return errorsOf(validateResource(r, { profile }));
    } catch (err) {
      return errorsOf((err as OperationOutcomeError).outcome.issue);
    }
  };
  const record = example('DetectedIssue-example-duplicate-reminder.json');
  t.deepEqual(medplum(record), []);
  const twoKinds = { ...record, code: { coding: [record.code.coding[0], record.code.coding[0]] } };
  t.regex(show(medplum(twoKinds)), /slice 'kind': expected 1\.\.1, but found 2/);
  // a mitigation without its date (1..1 in the profile) passes medplum, not ours
  const noDate = { ...record, mitigation: [{ ...record.mitigation[0], date: undefined }] };
  t.deepEqual(medplum(noDate), []);
  t.regex(show(errorsOf(checkResource(noDate))), /expected 1\.\.1, but found 0 @ DetectedIssue\.mitigation\[0\]\.date/);
  // a report without any extension passes medplum's 1..1 hr-mark slice, not ours
  const report = example('DiagnosticReport-example-cbc.json');
  delete report.extension;
  const drProfile = projectDefinition(PROFILE.diagnosticReport) as StructureDefinition;
  t.deepEqual(errorsOf((() => { try { return validateResource(report, { profile: drProfile }); } catch (e) { return (e as OperationOutcomeError).outcome.issue; } })()), []);
  t.regex(show(errorsOf(checkResource(report))), /slice 'hrMark': expected 1\.\.1, but found 0 @ DiagnosticReport\.extension/);
});

// ---------------------------------------------------------------------------------------------------
// examples

test('every example is valid ($validate: no errors) and stored', async (t) => {
  t.true(examples.size >= 10);
  const claimed = new Set<string>();
  for (const [file, resource] of examples) {
    const issues = await validate(resource);
    t.deepEqual(errorsOf(issues), [], `${file}:\n${show(issues)}`);
    for (const p of resource.meta?.profile ?? []) claimed.add(p);
    for (const e of resource.entry ?? []) for (const p of e.resource?.meta?.profile ?? []) claimed.add(p);
  }
  // one example at least for each profile
  t.deepEqual([...claimed].sort(), Object.values(PROFILE).sort());
  for (const file of ['DetectedIssue-example-encounter-reminder.json', 'DetectedIssue-example-duplicate-reminder.json']) {
    const r = example(file);
    const res = await s.fhir(`DetectedIssue/${r.id}`, { method: 'PUT', json: r });
    t.true(res.status === 201 || res.status === 200, `${file}: ${res.status}`);
  }
});

test('the report submission example: the chain Provenance holds the Bundle fingerprint, the transaction is accepted', async (t) => {
  const bundle = example('Bundle-example-report-submission.json');
  const chainEntry = bundle.entry.find((e: Json) => e.resource.resourceType === 'Provenance');
  const anchor = readChainAnchor(chainEntry.resource);
  t.is(anchor.fingerprint, fingerprint(bundle, 'sm3'));
  const res = await s.fhir('', { method: 'POST', json: bundle });
  const body = (await res.json()) as Json;
  t.is(res.status, 200, JSON.stringify(body).slice(0, 500));
  t.deepEqual(body.entry.map((e: Json) => e.response.status.slice(0, 3)), ['201', '201', '201', '201']);
  // the Provenance sent later in a batch of four: the proof leads to the root, for the same fingerprint
  const later = example('Provenance-example-chain.json');
  const laterAnchor = readChainAnchor(later);
  t.is(laterAnchor.fingerprint, anchor.fingerprint);
  t.deepEqual(verifyAnchorProof(laterAnchor.fingerprint, laterAnchor.proof), { ok: true, root: laterAnchor.proof?.root });
  const reportId = /DiagnosticReport\/([^/]+)/.exec(body.entry[0].response.location)?.[1];
  const retargeted = { ...later, id: undefined, target: [{ reference: `DiagnosticReport/${reportId}` }] };
  const created = await s.fhir('Provenance', { method: 'POST', json: retargeted });
  t.is(created.status, 201, await created.text());
});

// ---------------------------------------------------------------------------------------------------
// broken variants: $validate reports them, a write is refused with 400, both naming the FHIRPath

interface Variant {
  name: string;
  file: string;
  change(r: Json): void;
  /** Expected error: text and expression. */
  text: RegExp;
  expression: string;
}

const QC = (r: Json) => r.extension.find((e: Json) => e.url === EXT.qcQualification);
const VARIANTS: Variant[] = [
  { name: 'report without HR mark', file: 'DiagnosticReport-example-cbc.json', change: (r) => delete r.extension, text: /slice 'hrMark'/, expression: 'DiagnosticReport.extension' },
  { name: 'HR mark as a Coding', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.extension = [{ url: EXT.hrMark, valueCoding: { code: '粤HR' } }]), text: /allows for the types \[string\]/, expression: 'DiagnosticReport.extension[0].valueCoding' },
  { name: 'report coded with LOINC only', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.code = { coding: [{ system: 'http://loinc.org', code: '58410-2' }] }), text: /hr-dr-1/, expression: 'DiagnosticReport' },
  { name: 'report coded with an unknown platform code', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.code.coding = [{ system: CATALOGUE_SYSTEM, code: 'L-00000000' }]), text: /Unknown code 'L-00000000'/, expression: 'DiagnosticReport.code.coding[0].code' },
  { name: 'report coded with a catalogue field, not an item', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.code.coding = [{ system: CATALOGUE_SYSTEM, code: 'F-92623b' }]), text: /identifies no item of the recognition catalogue/, expression: 'DiagnosticReport.code' },
  { name: 'report with a malformed national code', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.code.coding = [{ system: 'https://fhir.huren.gz.cn/CodeSystem/nhsa-service-item', code: '2501010150000' }]), text: /not a national medical-insurance service code/, expression: 'DiagnosticReport.code.coding[0]' },
  { name: 'report without a v2-0074 category', file: 'DiagnosticReport-example-ultrasound.json', change: (r) => (r.category = [{ text: '超声' }]), text: /slice 'section'/, expression: 'DiagnosticReport.category' },
  { name: 'report performed by a Practitioner', file: 'DiagnosticReport-example-cbc.json', change: (r) => (r.performer = [{ reference: 'Practitioner/example-doctor' }]), text: /hr-dr-3/, expression: 'DiagnosticReport' },
  { name: 'exam report without results or conclusion', file: 'DiagnosticReport-example-ultrasound.json', change: (r) => delete r.conclusion, text: /hr-dr-2/, expression: 'DiagnosticReport' },
  { name: 'report without issued', file: 'DiagnosticReport-example-cbc.json', change: (r) => delete r.issued, text: /expected 1\.\.1, but found 0/, expression: 'DiagnosticReport.issued' },
  { name: 'result above its range without a flag', file: 'Observation-example-wbc.json', change: (r) => delete r.interpretation, text: /hr-obs-2/, expression: 'Observation' },
  { name: 'quantitative result without a reference range', file: 'Observation-example-hgb.json', change: (r) => delete r.referenceRange, text: /hr-obs-1/, expression: 'Observation' },
  { name: 'institution without district', file: 'Organization-example-lw.json', change: (r) => delete r.extension, text: /slice 'district'/, expression: 'Organization.extension' },
  { name: 'district of the wrong code system', file: 'Organization-example-lw.json', change: (r) => (r.extension[0].valueCoding.system = 'urn:oid:2.16.156.10011.2.3.2'), text: /does not match the pattern/, expression: 'Organization.extension[0].value.ofType(Coding)' },
  { name: 'QC qualification without coverage', file: 'Organization-example-gy1.json', change: (r) => (QC(r).extension = QC(r).extension.filter((e: Json) => e.url !== 'coverage')), text: /slice 'coverage': expected 1\.\.\*, but found 0/, expression: 'Organization.extension[1].extension' },
  { name: 'QC category of the wrong code system', file: 'Organization-example-gy1.json', change: (r) => (QC(r).extension[0].valueCoding.system = 'http://loinc.org'), text: /does not match the pattern/, expression: 'Organization.extension[1].extension[0].value.ofType(Coding)' },
  { name: 'QC category that is an item, not a field', file: 'Organization-example-gy1.json', change: (r) => (QC(r).extension[0].valueCoding.code = 'L-C0581225'), text: /qc-1/, expression: 'Organization.extension[1]' },
  { name: 'QC coverage that is not a GB/T 2260 code', file: 'Organization-example-gy1.json', change: (r) => (QC(r).extension[1].valueCoding.code = 'GZ'), text: /qc-2/, expression: 'Organization.extension[1]' },
  { name: 'QC qualification with an unknown part', file: 'Organization-example-gy1.json', change: (r) => QC(r).extension.push({ url: 'level', valueString: '省级' }), text: /does not match any slice .*closed/, expression: 'Organization.extension[1].extension[4]' },
  { name: 'QC period as a string', file: 'Organization-example-gy1.json', change: (r) => (QC(r).extension[3] = { url: 'period', valueString: '2024' }), text: /The type string is not allowed here \(allowed: Period\)/, expression: 'Organization.extension[1].extension[3].value.ofType(string)' },
  { name: 'chain Provenance without the anchor', file: 'Provenance-example-chain.json', change: (r) => delete r.extension, text: /slice 'chainAnchor'/, expression: 'Provenance.extension' },
  { name: 'chain anchor without ledger', file: 'Provenance-example-chain.json', change: (r) => (r.extension[0].extension = r.extension[0].extension.filter((e: Json) => e.url !== 'ledger')), text: /slice 'ledger': expected 1\.\.1, but found 0/, expression: 'Provenance.extension[0].extension' },
  { name: 'chain anchor algorithm that is not the fingerprint one', file: 'Provenance-example-chain.json', change: (r) => (r.extension[0].extension[0].valueCode = 'sha256'), text: /ca-3/, expression: 'Provenance.extension[0]' },
  { name: 'chain anchor height as a string', file: 'Provenance-example-chain.json', change: (r) => (r.extension[0].extension[4] = { url: 'height', valueString: '1187342' }), text: /not allowed here \(allowed: unsignedInt\)/, expression: 'Provenance.extension[0].extension[4].value.ofType(string)' },
  { name: 'chain Provenance targeting a Patient', file: 'Provenance-example-chain.json', change: (r) => (r.target = [{ reference: 'Patient/example-chen' }]), text: /hr-prov-1/, expression: 'Provenance' },
  { name: 'record without a kind', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => (r.code = { text: 'reminder' }), text: /expected 1\.\.\*, but found 0/, expression: 'DetectedIssue.code.coding' },
  { name: 'record of an unknown kind', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => (r.code.coding[0].code = 'lab-reminder'), text: /Unknown code 'lab-reminder'/, expression: 'DetectedIssue.code.coding[0].code' },
  { name: 'record without the requesting institution', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => delete r.extension, text: /slice 'requester'/, expression: 'DetectedIssue.extension' },
  { name: 'requesting institution that is not an Organization', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => (r.extension[0].valueReference = { reference: 'Patient/example-chen' }), text: /reqi-1/, expression: 'DetectedIssue.extension[0]' },
  { name: 'record authored by an Organization', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => (r.author = { reference: 'Organization/example-lw' }), text: /hr-rec-5/, expression: 'DetectedIssue' },
  { name: 'record identified as a Period', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => { r.identifiedPeriod = { start: r.identifiedDateTime }; delete r.identifiedDateTime; }, text: /The type Period is not allowed here/, expression: 'DetectedIssue.identified.ofType(Period)' },
  { name: 'not-recognised decision without a reason', file: 'DetectedIssue-example-duplicate-reminder.json', change: (r) => r.mitigation[0].action.coding.splice(1, 1), text: /hr-dec-1/, expression: 'DetectedIssue.mitigation[0]' },
  { name: 'decision with an unknown reason code', file: 'DetectedIssue-example-duplicate-reminder.json', change: (r) => (r.mitigation[0].action.coding[1].code = '42'), text: /not in the value set https:\/\/fhir\.huren\.gz\.cn\/ValueSet\/not-recognised-reason/, expression: 'DetectedIssue.mitigation[0].action.coding[1]' },
  { name: 'reason 08 without its text', file: 'DetectedIssue-example-duplicate-reminder.json', change: (r) => { r.mitigation[0].action.coding[1].code = '08'; delete r.mitigation[0].action.text; }, text: /hr-dec-2/, expression: 'DetectedIssue.mitigation[0]' },
  { name: 'decision without a date', file: 'DetectedIssue-example-duplicate-reminder.json', change: (r) => delete r.mitigation[0].date, text: /expected 1\.\.1, but found 0/, expression: 'DetectedIssue.mitigation[0].date' },
  { name: 'decision about a report the record does not implicate', file: 'DetectedIssue-example-encounter-reminder.json', change: (r) => (r.mitigation[0].extension[0].valueReference.reference = 'DiagnosticReport/other'), text: /hr-rec-4/, expression: 'DetectedIssue' },
];

for (const v of VARIANTS) {
  test(`broken: ${v.name}`, async (t) => {
    const r = example(v.file);
    v.change(r);
    const found = (issues: OperationOutcomeIssue[]) => errorsOf(issues).some((i) => v.text.test(i.details?.text ?? '') && i.expression?.includes(v.expression));
    const viaValidate = await validate(r);
    t.true(found(viaValidate), `$validate:\n${show(viaValidate)}`);
    delete r.id;
    const res = await s.fhir(r.resourceType, { method: 'POST', json: r });
    const body = (await res.json()) as OperationOutcome;
    t.is(res.status, 400);
    t.true(found(body.issue ?? []), `create:\n${show(body.issue ?? [])}`);
  });
}

test('a broken entry of a transaction is refused with its path in the Bundle', async (t) => {
  const bundle = example('Bundle-example-report-submission.json');
  delete bundle.entry[0].resource.extension;
  // (another report: the example's own identifier is already stored, so its conditional create would match)
  bundle.entry[0].resource.identifier[0].value = 'LAB-2024-009999';
  bundle.entry[0].request.ifNoneExist = 'identifier=https://his.gy1.example/report-id|LAB-2024-009999';
  const res = await s.fhir('', { method: 'POST', json: bundle });
  const body = (await res.json()) as OperationOutcome;
  t.is(res.status, 400);
  t.true(body.issue?.some((i) => /slice 'hrMark'/.test(i.details?.text ?? '') && i.expression?.[0] === 'Bundle.entry[0].resource.extension'), show(body.issue ?? []));
});

test('profiles are only checked when claimed; an unknown profile is a warning, a profile of another type an error', async (t) => {
  const report = example('DiagnosticReport-example-cbc.json');
  delete report.extension;
  delete report.meta;
  t.deepEqual(errorsOf(await validate(report)), []);
  const unknown = { ...report, meta: { profile: ['http://example.org/fhir/StructureDefinition/other-report'] } };
  const issues = await validate(unknown);
  t.deepEqual(errorsOf(issues), []);
  t.true(issues.some((i) => i.severity === 'warning' && /not known to this server/.test(i.details?.text ?? '') && i.expression?.[0] === 'DiagnosticReport.meta.profile[0]'));
  const wrongType = { ...report, meta: { profile: [PROFILE.observation] } };
  t.regex(show(errorsOf(await validate(wrongType))), /is a profile of Observation, not of DiagnosticReport @ DiagnosticReport\.meta\.profile\[0\]/);
});

test('$validate with a profile parameter checks an unclaimed resource against it', async (t) => {
  const report = example('DiagnosticReport-example-cbc.json');
  delete report.meta;
  delete report.extension;
  const viaQuery = await s.fhir(`DiagnosticReport/$validate?profile=${encodeURIComponent(PROFILE.diagnosticReport)}`, { method: 'POST', json: report });
  t.regex(show(errorsOf(((await viaQuery.json()) as OperationOutcome).issue)), /slice 'hrMark'.* @ DiagnosticReport\.extension/);
  const params = { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: report }, { name: 'profile', valueUri: PROFILE.diagnosticReport }] };
  const viaParams = await s.fhir('DiagnosticReport/$validate', { method: 'POST', json: params });
  t.regex(show(errorsOf(((await viaParams.json()) as OperationOutcome).issue)), /slice 'hrMark'/);
  t.deepEqual(errorsOf(await validate(report)), []);
});

// ---------------------------------------------------------------------------------------------------
// what the recognition service writes

test('the recognition records of server/recognition/records.ts conform to the recognition-record profile', (t) => {
  const now = new Date('2024-06-18T02:30:00Z');
  const base = { patient: { reference: 'Patient/p1' }, requester: { reference: 'Organization/o1' }, detail: '未发现可互认的检查检验结果。', now };
  const implicated = [{ reference: 'DiagnosticReport/r1' }, { reference: 'DiagnosticReport/r2' }];
  const records = [
    reminder({ ...base, kind: 'encounter-reminder', implicated: [] }),
    reminder({ ...base, kind: 'encounter-reminder', implicated }),
    reminder({ ...base, kind: 'duplicate-order-reminder', implicated, ordered: [{ coding: [{ system: CATALOGUE_SYSTEM, code: 'L-065DC84A', display: '钾' }], text: '钾' }] }),
    reminder({ ...base, kind: 'duplicate-order-reminder', implicated: [], ordered: [{ coding: [{ system: 'https://his.example/local', code: 'X1' }] }] }),
  ];
  const decisions = [
    decisionMitigation({ decision: 'recognised', now }),
    decisionMitigation({ decision: 'recognised', report: implicated[1], author: { reference: 'Practitioner/d1' }, now }),
    decisionMitigation({ decision: 'not-recognised', reason: { system: REASON_SYSTEM, code: '04', display: '急诊、急救或危重症' }, now }),
    decisionMitigation({ decision: 'not-recognised', reason: { system: REASON_SYSTEM, code: '08' }, comment: '外院报告项目与本院不一致', report: implicated[0], now }),
  ];
  for (const r of records) t.deepEqual(errorsOf(checkResource(r)), [], show(checkResource(r)));
  for (const m of decisions) {
    const r = { ...records[1], mitigation: [m] };
    t.deepEqual(errorsOf(checkResource(r)), [], show(checkResource(r)));
  }
  t.is(records[0].meta?.profile?.[0], PROFILE.recognitionRecord);
  t.deepEqual(records[1].code?.coding?.map((c) => c.system), [RECORD_KIND_SYSTEM]);
  t.is(decisions[2].action?.coding?.[0].system, DECISION_SYSTEM);
  // and what the service refuses, the profile refuses too: a decision on a record without implicated reports
  t.regex(show(errorsOf(checkResource({ ...records[0], mitigation: [decisions[0]] }))), /hr-rec-3/);
});

// ---------------------------------------------------------------------------------------------------
// search parameters, CapabilityStatement, publication

async function ids(query: string): Promise<string[]> {
  const res = await s.fhir(query);
  const body = (await res.json()) as Json;
  if (res.status !== 200) throw new Error(`${query}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return (body.entry ?? []).map((e: Json) => e.resource.id).sort();
}

test('the project search parameters are indexed and searchable', async (t) => {
  // an institution that does not claim the profile is indexed the same way
  const other = {
    resourceType: 'Organization',
    name: '佛山市第一人民医院',
    extension: [
      { url: EXT.district, valueCoding: { system: ADMIN_DIVISION_SYSTEM, code: '440604' } },
      { url: EXT.qcQualification, extension: [{ url: 'category', valueCoding: { system: CATALOGUE_SYSTEM, code: 'F-613bc1' } }, { url: 'coverage', valueCoding: { system: ADMIN_DIVISION_SYSTEM, code: '440600' } }, { url: 'period', valuePeriod: { start: '2024-01-01' } }] },
    ],
  };
  const created = (await (await s.fhir('Organization', { method: 'POST', json: other })).json()) as Json;
  t.deepEqual(await ids(`Organization?qc-category=${CATALOGUE_SYSTEM}|F-92623b`), ['example-gy1']);
  t.deepEqual(await ids('Organization?qc-category=F-613bc1'), [created.id, 'example-gy1'].sort());
  t.deepEqual(await ids('Organization?qc-coverage=440600'), [created.id, 'example-gy1'].sort());
  t.deepEqual(await ids(`Organization?district=${ADMIN_DIVISION_SYSTEM}|440103`), ['example-lw']);
  t.deepEqual(await ids('Organization?district=440104&qc-category=F-85b5c3'), ['example-gy1']);
  t.deepEqual(await ids('Organization?qc-category:missing=true&_id=example-lw'), ['example-lw']);
  const reports = await ids('DiagnosticReport?hr-mark=粤HR');
  t.true(reports.includes('example-cbc') && reports.includes('example-ultrasound'));
  t.deepEqual(await ids('DiagnosticReport?hr-mark=京HR'), []);
  const fp = readChainAnchor(example('Provenance-example-chain.json')).fingerprint;
  t.true((await ids(`Provenance?chain-fingerprint=${fp}`)).length >= 1);
  t.deepEqual(await ids(`DetectedIssue?decision=${DECISION_SYSTEM}|not-recognised`), ['example-duplicate-reminder']);
  t.deepEqual(await ids(`DetectedIssue?decision=${REASON_SYSTEM}|01`), ['example-duplicate-reminder']);
  t.deepEqual(await ids(`DetectedIssue?decision=${DECISION_SYSTEM}|recognised`), ['example-encounter-reminder']);
});

test('the CapabilityStatement lists the profiles and the project search parameters', async (t) => {
  const cs = (await (await fetch(`${s.base}/metadata`)).json()) as Json;
  const resource = (type: string) => cs.rest[0].resource.find((r: Json) => r.type === type);
  t.deepEqual(resource('DiagnosticReport').supportedProfile, [PROFILE.diagnosticReport]);
  t.deepEqual(resource('Observation').supportedProfile, [PROFILE.observation]);
  t.deepEqual(resource('Provenance').supportedProfile, [PROFILE.chainProvenance]);
  t.deepEqual(resource('DetectedIssue').supportedProfile, [PROFILE.recognitionRecord]);
  t.deepEqual(resource('Organization').supportedProfile, [PROFILE.institution]);
  t.is(resource('Patient').supportedProfile, undefined);
  const param = (type: string, name: string) => resource(type).searchParam.find((p: Json) => p.name === name);
  t.is(param('DiagnosticReport', 'hr-mark')?.definition, `${SP_BASE}DiagnosticReport-hr-mark`);
  t.is(param('Organization', 'qc-category')?.definition, `${SP_BASE}Organization-qc-category`);
  t.is(param('Organization', 'qc-coverage')?.type, 'token');
  t.is(param('Organization', 'district')?.definition, `${SP_BASE}Organization-district`);
  t.is(param('Provenance', 'chain-fingerprint')?.definition, `${SP_BASE}Provenance-chain-fingerprint`);
  t.is(param('DetectedIssue', 'decision')?.definition, `${SP_BASE}DetectedIssue-decision`);
  t.true(resource('Patient').operation.some((o: Json) => o.name === 'recognition-check'));
});

test('the conformance resources are published at their canonical URLs, once', async (t) => {
  for (const url of [PROFILE.diagnosticReport, EXT.qcQualification, EXT.chainAnchor]) {
    const body = (await (await s.fhir(`StructureDefinition?url=${encodeURIComponent(url)}`)).json()) as Json;
    t.is(body.entry?.length, 1, url);
    t.deepEqual(body.entry[0].resource.snapshot, projectDefinition(url)?.snapshot);
  }
  const sp = (await (await s.fhir(`SearchParameter?url=${encodeURIComponent(`${SP_BASE}Organization-qc-category`)}`)).json()) as Json;
  t.is(sp.entry?.[0]?.resource.code, 'qc-category');
  const od = (await (await s.fhir(`OperationDefinition?url=${encodeURIComponent('https://fhir.huren.gz.cn/OperationDefinition/Patient-recognition-check')}`)).json()) as Json;
  t.is(od.entry?.[0]?.resource.code, 'recognition-check');
  // a restart publishes nothing new
  const again = await publishProfiles(s.huren.db);
  t.is(again.written, 0);
  t.deepEqual(again.skipped, []);
  t.true(again.resources >= 16);
  const history = (await (await s.fhir('StructureDefinition/recognition-diagnostic-report/_history')).json()) as Json;
  t.is(history.entry?.length, 1);
});

test('profile validation stays fast: well under a millisecond or two per resource, where medplum re-parses the profile', (t) => {
  const cases: [Resource, StructureDefinition][] = [
    [example('DiagnosticReport-example-cbc.json'), projectDefinition(PROFILE.diagnosticReport) as StructureDefinition],
    [example('DetectedIssue-example-duplicate-reminder.json'), projectDefinition(PROFILE.recognitionRecord) as StructureDefinition],
    [example('Organization-example-gy1.json'), projectDefinition(PROFILE.institution) as StructureDefinition],
  ];
  for (const [resource, sd] of cases) {
    for (let i = 0; i < 30; i++) validateAgainstProfile(resource, sd);
    const runs: number[] = [];
    for (let i = 0; i < 41; i++) {
      const start = performance.now();
      validateAgainstProfile(resource, sd);
      runs.push(performance.now() - start);
    }
    const median = runs.sort((a, b) => a - b)[20];
    t.true(median < 2, `${resource.resourceType}: median ${median.toFixed(3)} ms`);
  }
});
