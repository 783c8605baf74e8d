import test from 'ava';
import { allows, missing, needed, parseScope, requirements } from '../server/auth/scopes.ts';
import { RateLimiter } from '../server/auth/throttle.ts';

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
    ['POST', '$code-upgrade', { type: 'CodeSystem', action: 'u' }],
    ['POST', '$validate', { action: 'r' }],
  ];
  for (const [method, path, want] of cases) t.deepEqual(needed(method, path.split('/').filter(Boolean)), want, `${method} ${path}`);
});

test('requirements: the recognition checks also need to read reports and create their reminder', (t) => {
  t.deepEqual(requirements('GET', ['Patient', '1', '$recognition-check']), [
    { type: 'Patient', action: 'r' },
    { type: 'DiagnosticReport', action: 'r' },
    { type: 'DetectedIssue', action: 'c' },
  ]);
  t.deepEqual(requirements('POST', ['ServiceRequest', '$duplicate-check']).slice(1), [
    { type: 'DiagnosticReport', action: 'r' },
    { type: 'DetectedIssue', action: 'c' },
  ]);
  t.deepEqual(requirements('GET', ['Patient', '1']), [{ type: 'Patient', action: 'r' }]);
  t.deepEqual(requirements('GET', ['metadata']), []);
  const check = requirements('GET', ['Patient', '$recognition-check']);
  t.deepEqual(missing(['system/*.read'], check), { type: 'DetectedIssue', action: 'c' }, 'a read-only token');
  t.is(missing(['system/*.read', 'system/DetectedIssue.c'], check), undefined);
  t.deepEqual(missing(['system/ValueSet.rs'], check), { type: 'Patient', action: 'r' });
});

test('the rate limiter: a bucket of attempts a minute, refilled at that rate, with the wait when empty', (t) => {
  const limiter = new RateLimiter(6); // one attempt every 10 s
  const t0 = 1_000_000;
  for (let i = 0; i < 6; i++) t.is(limiter.take('a', t0), 0, `attempt ${i + 1}`);
  t.is(limiter.take('a', t0), 10, 'empty: the next attempt in 10 s');
  t.is(limiter.peek('a', t0 + 4_000), 6, 'peeking takes nothing');
  t.is(limiter.take('b', t0), 0, 'another key has its own bucket');
  t.is(limiter.take('a', t0 + 10_000), 0, 'refilled');
  t.is(limiter.take('a', t0 + 10_000), 10);
});
