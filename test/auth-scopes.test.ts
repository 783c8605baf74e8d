import test from 'ava';
import { allows, needed, parseScope } from '../server/auth/scopes.ts';

test('SMART v1 and v2 system scopes parse; anything else does not', (t) => {
  t.deepEqual([...parseScope('system/*.read')!.actions].sort(), ['r', 's']);
  t.deepEqual([...parseScope('system/Patient.write')!.actions].sort(), ['c', 'd', 'u']);
  t.deepEqual([...parseScope('system/*.*')!.actions].sort(), ['c', 'd', 'r', 's', 'u']);
  t.deepEqual([...parseScope('system/DiagnosticReport.cruds')!.actions].sort(), ['c', 'd', 'r', 's', 'u']);
  t.is(parseScope('system/Observation.rs')!.type, 'Observation');
  for (const bad of ['patient/*.read', 'user/Patient.rs', 'system/*.sr', 'system/*.', 'system/patient.rs', 'system/*.x', 'openid', 'system/*.readwrite']) {
    t.is(parseScope(bad), undefined, bad);
  }
});

test('allows: the type or a wildcard, and the letter', (t) => {
  t.true(allows(['system/*.rs'], 'Patient', 'r'));
  t.false(allows(['system/*.rs'], 'Patient', 'c'));
  t.true(allows(['system/Patient.read', 'system/DiagnosticReport.c'], 'DiagnosticReport', 'c'));
  t.false(allows(['system/Patient.read'], 'Observation', 'r'));
  t.false(allows(['system/Patient.read'], undefined, 's'), 'a system-level search needs a wildcard');
  t.true(allows(['system/*.read'], undefined, 's'));
  t.false(allows([], 'Patient', 'r'));
  t.false(allows(['cds-hooks'], 'Patient', 'r'));
});

test('needed: each REST interaction and operation maps to one letter', (t) => {
  const cases: [string, string, { type?: string; action: string } | undefined][] = [
    ['GET', '', undefined],
    ['GET', 'metadata', undefined],
    ['GET', '_async/abc', undefined],
    ['POST', '', undefined],
    ['GET', '_history', { action: 's' }],
    ['GET', 'Patient', { type: 'Patient', action: 's' }],
    ['POST', 'Patient', { type: 'Patient', action: 'c' }],
    ['PUT', 'Patient', { type: 'Patient', action: 'u' }],
    ['DELETE', 'Patient', { type: 'Patient', action: 'd' }],
    ['POST', 'Patient/_search', { type: 'Patient', action: 's' }],
    ['GET', 'Patient/_history', { type: 'Patient', action: 's' }],
    ['GET', 'Patient/1', { type: 'Patient', action: 'r' }],
    ['PUT', 'Patient/1', { type: 'Patient', action: 'u' }],
    ['PATCH', 'Patient/1', { type: 'Patient', action: 'u' }],
    ['DELETE', 'Patient/1', { type: 'Patient', action: 'd' }],
    ['GET', 'Patient/1/_history/2', { type: 'Patient', action: 'r' }],
    ['GET', 'Patient/1/$recognition-check', { type: 'Patient', action: 'r' }],
    ['GET', 'DiagnosticReport/1/$original', { type: 'DiagnosticReport', action: 'r' }],
    ['POST', 'ServiceRequest/$duplicate-check', { type: 'ServiceRequest', action: 'r' }],
    ['POST', 'DetectedIssue/1/$decide', { type: 'DetectedIssue', action: 'u' }],
    ['POST', 'CodeSystem/$catalogue-import', { type: 'CodeSystem', action: 'u' }],
    ['GET', 'ValueSet/$expand', { type: 'ValueSet', action: 'r' }],
    ['POST', '$code-upgrade', { action: 'u' }],
    ['POST', '$validate', { action: 'r' }],
  ];
  for (const [method, path, want] of cases) t.deepEqual(needed(method, path.split('/').filter(Boolean)), want, `${method} ${path}`);
});
