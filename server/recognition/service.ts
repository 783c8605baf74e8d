/**
 * The recognition service: the public face that the FHIR operations and the CDS Hooks services call. It does
 * the I/O through the Repository — find the patient, the requester, the patient's reports with their
 * Observations and performing institutions (one statement, facts-query.ts) — leaves the judging to the pure
 * rules (rules.ts, facts.ts), and writes the records (DetectedIssue reminders and decisions, AuditEvent access
 * records, records.ts).
 *
 *   recognitionCheck()  — at an encounter: the patient's recognisable results; writes an encounter reminder (check.ts)
 *   duplicateCheck()    — at order saving: per ordered item, the recognisable results covering it; writes a
 *                         duplicate-order reminder (duplicate.ts)
 *   recordDecision()    — the doctor's decision on a reminder (DetectedIssue.mitigation) (decision.ts)
 *   patientReports(), viewReport() — report viewing; each writes an access record (views.ts)
 *
 * Bad input is a RecognitionError naming the input at fault (param, index, path; errors.ts); callers map it to
 * their protocol. Bad input never writes.
 */
export { RecognitionError, toFhirError } from './errors.ts';
export * from './model.ts';
export { recognitionCheck } from './check.ts';
export { duplicateCheck } from './duplicate.ts';
export { recordDecision } from './decision.ts';
export { patientReports, viewReport, recordAccess, type ReportItemView, type ReportView, type ReportDetail, type PatientReportsInput } from './views.ts';
export { resolvePatients, resolveRequester, type ResolvedRequester } from './patients.ts';
export { factsSql, loadReports } from './facts-query.ts';
