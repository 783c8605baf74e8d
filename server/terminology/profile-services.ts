/**
 * Lends the platform's terminology to profile validation (server/fhir/profiles/validate.ts): required bindings
 * to the platform's value sets, and codes of its complete code systems.
 */
import { configureProfileValidation } from '../fhir/profiles/validate.ts';
import { isCoreValueSet } from '../fhir/validation/terminology.ts';
import { CANONICAL_BASE } from './canonical.ts';
import { terminology } from './load.ts';
import { validateCode } from './service.ts';

const PLATFORM_CODE_SYSTEMS = `${CANONICAL_BASE}/CodeSystem/`;

export function connectTerminologyToProfiles(): void {
  configureProfileValidation({
    checkBinding(url, codings) {
      // a FHIR core value set is judged as the core validator judges it (only when enumerable), not through the
      // registry's fallback to the core terminology, which would refuse what it cannot expand
      const vs = isCoreValueSet(url) ? undefined : terminology.valueSet(url);
      return vs ? validateCode(terminology, vs, codings) : undefined;
    },
    checkCode(system, code) {
      if (!system.startsWith(PLATFORM_CODE_SYSTEMS)) return undefined;
      const cs = terminology.codeSystem(system);
      return cs?.complete ? cs.get(code) !== undefined : undefined;
    },
  });
}
