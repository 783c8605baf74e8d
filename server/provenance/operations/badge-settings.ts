/**
 * `$badge-settings` (system level; docs/chain-provenance.md): the hash-consistent badge setting (哈希一致标识)
 * in Parameters — read it (GET, or POST without parameters), or change it (POST with `enabled` and/or
 * `status`; full rights needed). A bad value is a 400 naming the parameter.
 */
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail } from '../../fhir/errors.ts';
import { BadgeSettingsError, readBadgeSettings, writeBadgeSettings, type BadgeSettings } from '../badge.ts';
import type { Operation } from '../../fhir/operations/registry.ts';
import { loadDefinition } from '../../fhir/operations/registry.ts';
import { StrictInput as RecognitionInput } from '../../fhir/operations/input.ts';

let definition: OperationDefinition | undefined;

/** Changing platform settings needs full rights. */
export const ADMIN_SCOPES = ['system/*.*'];

/** Who may change the setting: full rights (the platform token), or a signed-in system administrator. */
export function mayChangeBadge(principal: { scopes: string[]; roles?: string[] }): boolean {
  return principal.scopes.some((s) => ADMIN_SCOPES.includes(s)) || (principal.roles ?? []).includes('system-admin');
}

export const badgeSettingsOperation: Operation = {
  name: 'badge-settings',
  get definition() {
    return (definition ??= loadDefinition('OperationDefinition-badge-settings.json'));
  },
  methods: ['GET', 'POST'],
  async handle(ctx, req) {
    const input = new RecognitionInput('badge-settings', req, ['enabled', 'status']);
    const sql = ctx.repo.connection;
    if (req.method.toUpperCase() === 'GET' && input.names().length > 0) {
      throw badRequest('$badge-settings: GET reads the setting; change it with POST', input.expr(input.names()[0]!));
    }
    if (input.names().length === 0) return answer(await readBadgeSettings(sql));
    if (!mayChangeBadge(ctx.principal)) throw fail(403, 'forbidden', 'Changing the badge setting needs full rights or the system administrator role');
    const enabled = input.boolean('enabled');
    const given = input.list('status');
    const statuses = given.length > 0 ? given.flatMap((p) => (p.valueCode ?? p.valueString ?? '').split(',').map((s) => s.trim())) : undefined;
    try {
      return answer(await writeBadgeSettings(ctx.repo.db, { enabled, statuses }, ctx.principal.id, sql));
    } catch (e) {
      if (e instanceof BadgeSettingsError) {
        const where = e.param === 'enabled' ? input.expr('enabled') : input.expr('status');
        throw badRequest(`$badge-settings: ${e.message}`, e.index !== undefined && input.posted ? `${where}[${e.index}]` : where);
      }
      throw e;
    }
  },
};

function answer(s: BadgeSettings): { status: number; body: Parameters } {
  const parameter: ParametersParameter[] = [
    { name: 'enabled', valueBoolean: s.enabled },
    ...s.statuses.map((code) => ({ name: 'status', valueCode: code })),
    ...(s.updated ? [{ name: 'updated', valueInstant: s.updated }] : []),
  ];
  return { status: 200, body: { resourceType: 'Parameters', parameter } };
}
