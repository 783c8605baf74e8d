/**
 * What identifies a patient, kept encrypted at rest (docs/security.md 数据保密性, 个人信息保护): the engine's
 * storage codec (server/fhir/engine.ts `StorageCodec`) with the platform's rules.
 *
 * A Patient is stored with its identifying elements — `identifier`, `name`, `telecom`, `address`, `contact`,
 * `photo` and the narrative `text` — taken out and sealed together as one SM4 envelope (`_sealed`, keys.ts), so
 * one encryption per written version; gender, birth date, links and the managing organisation stay readable.
 * Its index rows for the parameters over those elements hold blind values (HMAC-SM3 of the normalised value)
 * instead of the values:
 *
 *   identifier, telecom, phone, email                 token: the system stays, the value is blind — exact
 *                                                     `system|value` and `value` search work as before
 *   name, family, given, phonetic, address,           string: blind normalised value (default search) and
 *   address-city, -state, -postalcode, -country        blind exact value (`:exact`); a name also gets a row for
 *                                                     family+given written together (陈互认). The default
 *                                                     search matches a whole component, not a prefix of it;
 *                                                     `:contains` and `:text` are refused (400)
 *
 * Other stored text the engine hands over (async requests and answers, the submitted originals) is sealed as a
 * whole. Rows stored before the codec was installed open as they are.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { StorageCodec } from '../fhir/engine.ts';
import type { ParamDef } from '../fhir/definitions.ts';
import { badRequest } from '../fhir/errors.ts';
import { clip, KEY_LENGTH, normalizeText, type IndexRows } from '../fhir/search/indexer.ts';
import { splitPipe, unescape } from '../fhir/search/parse.ts';
import type { PrivacyKeys } from './keys.ts';

/** The elements sealed whole, per resource type (free text where a patient's name is written, too). */
export const SEALED_ELEMENTS: Record<string, readonly string[]> = {
  Patient: ['identifier', 'name', 'telecom', 'address', 'contact', 'photo', 'text'],
  DiagnosticReport: ['conclusion', 'text'],
  Observation: ['note', 'text'],
};

/** On every resource: the display of the references to the patient (it is usually their name). */
export const SEALED_DISPLAYS: readonly string[] = ['subject', 'patient'];

/** The search parameters kept as a blind index, per resource type. */
export const BLIND_PARAMS: Record<string, ReadonlySet<string>> = {
  Patient: new Set(['identifier', 'telecom', 'phone', 'email', 'name', 'family', 'given', 'phonetic', 'address', 'address-city', 'address-state', 'address-postalcode', 'address-country']),
};

const ENVELOPE = '_sealed';
/** An envelope key for a reference's display (`@display:subject`). */
const DISPLAY = '@display:';

function isDisplayed(v: unknown): v is { display: string } {
  return !!v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { display?: unknown }).display === 'string';
}

export function privacyCodec(keys: PrivacyKeys): StorageCodec {
  const purpose = (type: string, param: string) => `${type}.${param}`;
  const escapeToken = (s: string) => s.replace(/[\\|,$]/g, (c) => `\\${c}`);

  return {
    seal(resource) {
      const elements = SEALED_ELEMENTS[resource.resourceType] ?? [];
      const kept: Record<string, unknown> = {};
      const sealed: Record<string, unknown> = {};
      let any = false;
      for (const [k, v] of Object.entries(resource)) {
        if (elements.includes(k)) {
          sealed[k] = v;
          any = true;
        } else if (SEALED_DISPLAYS.includes(k) && isDisplayed(v)) {
          // the reference stays (search, compartments); its display goes into the envelope
          const { display, ...reference } = v;
          kept[k] = reference;
          sealed[`${DISPLAY}${k}`] = display;
          any = true;
        } else kept[k] = v;
      }
      if (!any) return resource;
      kept[ENVELOPE] = keys.seal(JSON.stringify(sealed));
      return kept as unknown as Resource;
    },

    open(resource) {
      const envelope = (resource as unknown as Record<string, unknown>)[ENVELOPE];
      if (typeof envelope !== 'string') return resource;
      const { [ENVELOPE]: _e, ...out } = resource as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(JSON.parse(keys.open(envelope)) as Record<string, unknown>)) {
        if (k.startsWith(DISPLAY)) {
          const element = k.slice(DISPLAY.length);
          out[element] = { ...(out[element] as object), display: v };
        } else out[k] = v;
      }
      return out as unknown as Resource;
    },

    index(resource, rows: IndexRows) {
      const type = resource.resourceType;
      const blind = BLIND_PARAMS[type];
      if (!blind) return;
      for (const row of rows.token) {
        if (!blind.has(row[2]) || row[4] === null) continue;
        row[4] = keys.blind(purpose(type, row[2]), row[4]);
      }
      const extra: IndexRows['string'] = [];
      if (blind.has('name')) {
        for (const n of (resource as { name?: Array<{ family?: string; given?: string[] }> }).name ?? []) {
          const whole = `${n?.family ?? ''}${(n?.given ?? []).join('')}`;
          if (whole && n?.given?.length && n.family) extra.push([type, resource.id as string, 'name', normalizeText(whole), clip(whole, 8 * KEY_LENGTH)]);
        }
      }
      rows.string.push(...extra);
      for (const row of rows.string) {
        if (!blind.has(row[2])) continue;
        row[3] = keys.blind(purpose(type, row[2]), row[3]);
        row[4] = keys.blind(`${purpose(type, row[2])}:exact`, row[4]);
      }
    },

    search(type, param: ParamDef, modifier, values) {
      if (!BLIND_PARAMS[type]?.has(param.code)) return undefined;
      if (modifier === 'missing') return undefined;
      if (modifier === 'contains' || modifier === 'text' || modifier === 'below' || modifier === 'above') {
        throw badRequest(`${type}.${param.code} is kept encrypted with a blind index: ':${modifier}' cannot be searched; search the whole value`, `${param.code}:${modifier}`);
      }
      const p = purpose(type, param.code);
      const kids = keys.ids;
      const out: string[] = [];
      for (const value of values) {
        if (param.type === 'token') {
          const parts = splitPipe(value);
          if (parts.length === 1) {
            for (const kid of kids) out.push(keys.blind(p, clip(parts[0]), kid));
          } else {
            const code = clip(unescape(parts[1]));
            if (code === '') out.push(value);
            else for (const kid of kids) out.push(`${escapeToken(parts[0])}|${keys.blind(p, code, kid)}`);
          }
        } else if (modifier === 'exact') {
          for (const kid of kids) out.push(keys.blind(`${p}:exact`, clip(unescape(value), 8 * KEY_LENGTH), kid));
        } else {
          for (const kid of kids) out.push(keys.blind(p, normalizeText(unescape(value)), kid));
        }
      }
      return out;
    },

    sealText: (text) => keys.seal(text),
    openText: (text) => (keys.isSealed(text) ? keys.open(text) : text),
  };
}
