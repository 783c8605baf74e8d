/**
 * Generated search data at a size where a plan that reads a whole table shows in EXPLAIN: patients, each with
 * lab Observations (a few LOINC codes over two years), a few Organizations, written through the repository's
 * own write path (Repository.createMany: the resource rows and every index row, with the storage codec), then
 * ANALYZE so that the planner knows the sizes. Deterministic: the same numbers give the same data.
 */
import type { Observation, Organization, Patient, Resource } from '@medplum/fhirtypes';
import type { Database } from '../../server/db/database.ts';
import { Repository } from '../../server/fhir/repository.ts';

export const LOINC = 'http://loinc.org';
export const CODES = ['2823-3', '2951-2', '2075-0', '2345-7', '6690-2', '718-7', '777-3', '1742-6', '1920-8', '2160-0', '3094-0', '17861-6'];
export const ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';
const FAMILIES = ['Chen', 'Li', 'Wang', 'Zhang', 'Liu', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Xu', 'Sun', 'Ma', 'Zhu', 'Hu', 'Guo', 'He', 'Lin', 'Luo', 'Gao', 'Zheng'];

export interface SearchData {
  patients: string[];
  organizations: string[];
  observations: number;
  /** The national id of patient i. */
  identifierOf(i: number): string;
  /** The family name of patient i (each family is shared by patients.length / 20 of them; 'Rare' by patient 0 only). */
  familyOf(i: number): string;
}

export async function loadSearchData(db: Database, options: { patients: number; observationsPerPatient: number; batch?: number }): Promise<SearchData> {
  const repo = new Repository(db);
  const organizations: string[] = [];
  const orgs: Organization[] = Array.from({ length: 20 }, (_, i) => ({ resourceType: 'Organization', id: `plan-org-${i}`, name: `Hospital ${i}` }));
  await repo.createMany(orgs);
  organizations.push(...orgs.map((o) => o.id as string));
  const identifierOf = (i: number) => `44010119800101${String(i).padStart(4, '0')}`;
  const familyOf = (i: number) => (i === 0 ? 'Rare' : FAMILIES[i % FAMILIES.length]);
  const patients: string[] = [];
  const batch = options.batch ?? 2000;
  let pending: Resource[] = [];
  const flush = async () => {
    if (pending.length > 0) await repo.createMany(pending);
    pending = [];
  };
  const start = Date.UTC(2024, 0, 1);
  let observations = 0;
  for (let p = 0; p < options.patients; p++) {
    const id = `plan-pat-${p}`;
    patients.push(id);
    const patient: Patient = {
      resourceType: 'Patient',
      id,
      identifier: [{ system: ID_SYSTEM, value: identifierOf(p) }],
      name: [{ family: familyOf(p), given: [`G${p}`] }],
      gender: p % 2 ? 'male' : 'female',
      birthDate: `19${50 + (p % 50)}-0${1 + (p % 9)}-1${p % 10}`,
      managingOrganization: { reference: `Organization/${organizations[p % organizations.length]}` },
    };
    pending.push(patient);
    for (let k = 0; k < options.observationsPerPatient; k++) {
      const n = p * options.observationsPerPatient + k;
      const code = CODES[(p + k) % CODES.length];
      const obs: Observation = {
        resourceType: 'Observation',
        id: `plan-obs-${n}`,
        status: 'final',
        identifier: [{ system: 'urn:huren:plan-obs', value: `obs-${n}` }],
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
        code: { coding: [{ system: LOINC, code, display: `Test ${code}` }] },
        subject: { reference: `Patient/${id}` },
        performer: [{ reference: `Organization/${organizations[(p + k) % organizations.length]}` }],
        effectiveDateTime: new Date(start + ((n * 7919) % 730) * 86_400_000 + (n % 24) * 3_600_000).toISOString(),
        valueQuantity: { value: 3 + (n % 40) / 10, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      };
      pending.push(obs);
      observations++;
    }
    if (pending.length >= batch) await flush();
  }
  await flush();
  await db.query('ANALYZE');
  return { patients, organizations, observations, identifierOf, familyOf };
}
