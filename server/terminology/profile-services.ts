/**
 * Lends the platform's terminology to profile validation (server/fhir/profiles/validate.ts): required bindings
 * to the platform's value sets, and codes of its complete code systems.
 */
import { configureProfileValidation } from '../fhir/profiles/validate.ts';
import { CANONICAL_BASE } from './canonical.ts';
import { terminology } from './load.ts';
import { validateCode } from './service.ts';

const PLATFORM_CODE_SYSTEMS = `${CANONICAL_BASE}/CodeSystem/`;

export function connectTerminologyToProfiles(): void {
  configureProfileValidation({
    checkBinding(url, codings) {
      const vs = terminology.valueSet(url);
      return vs ? validateCode(terminology, vs, codings) : undefined;
    },
    checkCode(system, code) {
      if (!system.startsWith(PLATFORM_CODE_SYSTEMS)) return undefined;
      const cs = terminology.codeSystem(system);
      return cs?.complete ? cs.get(code) !== undefined : undefined;
    },
  });
}
