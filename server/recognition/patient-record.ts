/**
 * The one path of a read of a patient's whole record — `$everything` and `$summary` (健康档案): the patient is
 * found through the caller's repository (404 when unknown, a RecognitionError naming `patient`), the read is
 * done, and one access record (AuditEvent, records.ts) names the patient. The scope these operations need is
 * one entry too (auth/scopes.ts PATIENT_RECORD_OPERATIONS). Rules about who may read a patient's record (a
 * care relationship, a reason, a consent) belong here, so that every whole-record read gets them at once.
 */
import type { Patient, Reference } from '@medplum/fhirtypes';
import type { ServiceContext } from './model.ts';
import { authorizePatientRecord } from '../auth/care.ts';
import { resolvePatients } from './patients.ts';
import { recordAccess } from './views.ts';

export type PatientRecordOperation = '$everything' | '$summary';

export async function readPatientRecord<T>(
  ctx: ServiceContext,
  operation: PatientRecordOperation,
  patientId: string,
  read: (patient: Patient) => Promise<T>,
  /** The requesting institution named in the access record (known once the read is done). */
  requester?: () => Reference | undefined
): Promise<T> {
  const [patient] = await resolvePatients(ctx.repo, { id: patientId }, 'patient');
  // own patient, or one in the caller's care with a stated purpose (auth/care.ts)
  if (ctx.principal) await authorizePatientRecord({ repo: ctx.repo, principal: ctx.principal }, patient.id as string, operation.slice(1));
  const result = await read(patient);
  await recordAccess(ctx, operation, [{ reference: `Patient/${patient.id}` }], requester?.());
  return result;
}
