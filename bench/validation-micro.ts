/**
 * `npx tsx bench/validation-micro.ts` — CPU cost of validation per report transaction (1 DiagnosticReport +
 * 15 Observations, as the bench's transaction scenario sends them; bench/data.ts labReport), in-process:
 * @medplum/core's validateResource (the reference), the compiled structural validator that replaced it
 * (server/fhir/validation/compiled.ts), and all of checkResource (structure, the server's own checks,
 * profiles). 200 generated reports, two warm-up rounds, then five measured; process CPU time (user + system),
 * so other load on the machine inflates it less than wall time. See docs/validation.md "Speed".
 */
import { validateResource } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { checkResource, loadValidation } from '../server/fhir/validate.ts';
import { validateStructure } from '../server/fhir/validation/compiled.ts';
import { defaultWindow, labReport, Rng } from './data.ts';

loadValidation();
const rng = new Rng(1);
const reports = Array.from({ length: 200 }, (_, i) =>
  labReport(rng, { patientId: `p${i}`, gender: 'male', org: { id: 'o1', code: 'c', name: 'Org' } }, defaultWindow()).bundle.entry!.map((e) => e.resource!),
);

function measure(label: string, fn: (r: Resource) => void): void {
  for (let w = 0; w < 2; w++) for (const report of reports) for (const r of report) fn(r);
  const rounds = 5;
  const start = process.cpuUsage();
  for (let w = 0; w < rounds; w++) for (const report of reports) for (const r of report) fn(r);
  const used = process.cpuUsage(start);
  console.log(`${label.padEnd(40)} ${((used.user + used.system) / (rounds * reports.length)).toFixed(0).padStart(6)} µs CPU per report transaction`);
}

measure('@medplum/core validateResource', (r) => {
  try {
    validateResource(r);
  } catch {
    // errors are thrown as an OperationOutcomeError; none expected here
  }
});
measure('compiled validateStructure', (r) => validateStructure(r));
measure('checkResource (everything)', (r) => checkResource(r));
