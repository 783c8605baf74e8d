/**
 * Provenance written by the platform itself (a catalogue import, a code upgrade): activity from the
 * platform-activity code system, the platform as performing agent, and the principal who asked for it (a
 * non-personal id) as author.
 */
import type { Provenance, Reference } from '@medplum/fhirtypes';
import type { Principal } from '../http/auth.ts';
import { CANONICAL_BASE, PLATFORM_ACTIVITY_SYSTEM } from './canonical.ts';
import { PLATFORM_ACTIVITIES } from './build.ts';

export const PLATFORM_AGENT_SYSTEM = `${CANONICAL_BASE}/sid/system`;
export const PRINCIPAL_SYSTEM = `${CANONICAL_BASE}/sid/principal`;
const PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
const DATA_OPERATION = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation';

export type PlatformActivity = 'code-upgrade' | 'catalogue-import';

export function platformProvenance(options: {
  activity: PlatformActivity;
  targets: Reference[];
  principal?: Principal;
  recorded?: string;
  entity?: Provenance['entity'];
  policy?: string[];
  reason?: string;
  dataOperation?: 'CREATE' | 'UPDATE';
}): Provenance {
  const activity = PLATFORM_ACTIVITIES.find((a) => a.code === options.activity);
  return {
    resourceType: 'Provenance',
    target: options.targets,
    recorded: options.recorded ?? new Date().toISOString(),
    ...(options.policy?.length ? { policy: options.policy } : {}),
    activity: {
      coding: [
        { system: PLATFORM_ACTIVITY_SYSTEM, code: options.activity, ...(activity ? { display: activity.zh } : {}) },
        { system: DATA_OPERATION, code: options.dataOperation ?? 'UPDATE' },
      ],
    },
    ...(options.reason ? { reason: [{ text: options.reason }] } : {}),
    agent: [
      {
        type: { coding: [{ system: PARTICIPANT_TYPE, code: 'performer', display: 'Performer' }] },
        who: { identifier: { system: PLATFORM_AGENT_SYSTEM, value: 'huren' }, display: 'Huren 互认平台' },
      },
      ...(options.principal
        ? [
            {
              type: { coding: [{ system: PARTICIPANT_TYPE, code: 'author', display: 'Author' }] },
              who: { identifier: { system: PRINCIPAL_SYSTEM, value: options.principal.id } },
            },
          ]
        : []),
    ],
    ...(options.entity?.length ? { entity: options.entity } : {}),
  };
}
