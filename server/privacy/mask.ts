/**
 * Masking in answers (docs/security.md 个人信息保护): who does not need a patient's identifying values gets
 * them masked — the national ID as 440101********1234, the name as 陈**, the phone as 138****5678, the address
 * without its street lines; contacts, photos and the narrative left out.
 *
 * Clear values go to:
 *   - the platform's operators (the bootstrap token),
 *   - hospital systems (SMART Backend Services clients, CDS clients) for their own patients and patients no
 *     institution manages — a hospital's HIS matches patients by their national ID, and it sent that ID in its
 *     query; a Patient whose `managingOrganization` is another institution is masked for it.
 * Masked values go to every person signed in to the app (doctors as viewers, administrators): the app shows
 * enough to recognise a patient, not to copy their identity.
 *
 * `$original` is the exception by design: it answers the submitted bytes exactly (its own scope, `original`).
 */
import type { Bundle, HumanName, Identifier, Parameters, Patient, Resource } from '@medplum/fhirtypes';
import type { ResponseDecorator } from '../fhir/engine.ts';
import type { Principal } from '../fhir/principal.ts';
import type { Sql } from '../db/database.ts';

/** Whether a caller sees a Patient's identifying values in clear. */
export function seesClear(principal: Principal, patient: Patient): boolean {
  if (principal.kind === 'bootstrap') return true;
  if (principal.kind !== 'client' && principal.kind !== 'cds-client') return false;
  const managing = patient.managingOrganization?.reference;
  if (!managing || !principal.institution) return true;
  return sameOrganization(managing, principal.institution);
}

function sameOrganization(a: string, b: string): boolean {
  const id = (r: string) => /(?:^|\/)Organization\/([^/?]+)$/.exec(r)?.[1];
  const x = id(a);
  const y = id(b);
  return x !== undefined && y !== undefined ? x === y : a === b;
}

/** Keeps the first `head` and last `tail` characters, stars between. */
export function maskMiddle(value: string, head: number, tail: number): string {
  const chars = [...value];
  if (chars.length <= head + tail) return '*'.repeat(chars.length);
  return chars.slice(0, head).join('') + '*'.repeat(chars.length - head - tail) + chars.slice(chars.length - tail).join('');
}

export function maskIdentifierValue(value: string): string {
  const n = [...value].length;
  if (n >= 15) return maskMiddle(value, 6, 4); // 身份证号: 440101********1234
  if (n >= 8) return maskMiddle(value, 2, 2);
  return '*'.repeat(n);
}

export function maskPhone(value: string): string {
  const at = value.indexOf('@');
  if (at > 0) return `${maskMiddle(value.slice(0, at), 1, 0)}${value.slice(at)}`;
  const n = [...value].length;
  return n >= 8 ? maskMiddle(value, 3, 4) : '*'.repeat(n);
}

/** 陈互认 → 陈**: the family name kept, every other character a star. */
export function maskName(name: HumanName): HumanName {
  const stars = (s: string) => '*'.repeat([...s].length);
  if (name.family) {
    const given = (name.given ?? []).map(stars);
    return { ...(name.use ? { use: name.use } : {}), family: name.family, ...(given.length ? { given } : {}), text: `${name.family}${given.join('')}` };
  }
  const text = name.text ?? (name.given ?? []).join('');
  const chars = [...text];
  return { ...(name.use ? { use: name.use } : {}), text: chars.length > 0 ? chars[0] + '*'.repeat(chars.length - 1) : '' };
}

export function maskPatient(p: Patient): Patient {
  const { contact: _c, photo: _p, text: _t, ...rest } = p;
  return {
    ...rest,
    ...(p.identifier ? { identifier: p.identifier.map((i: Identifier) => (i.value ? { ...i, value: maskIdentifierValue(i.value) } : i)) } : {}),
    ...(p.name ? { name: p.name.map(maskName) } : {}),
    ...(p.telecom ? { telecom: p.telecom.map((c) => (c.value ? { ...c, value: maskPhone(c.value) } : c)) } : {}),
    ...(p.address ? { address: p.address.map(({ line: _l, text: _x, ...a }) => a) } : {}),
    meta: { ...p.meta, security: [...(p.meta?.security ?? []), MASKED] },
  };
}

/** The security label an answer's masked Patient carries (HL7 v3 ObservationValue MASKED). */
export const MASKED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'MASKED', display: 'masked' };

/** Masks the Patients of an answer (in Bundles, Parameters and contained resources) the caller may not see in clear. */
export function maskFor(principal: Principal, resource: Resource, depth = 0): Resource {
  if (depth > 4 || !resource || typeof resource !== 'object') return resource;
  if (resource.resourceType === 'Patient') return seesClear(principal, resource) ? resource : maskPatient(resource);
  let out: Resource = resource;
  if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    out = { ...resource, entry: resource.entry.map((e) => (e?.resource ? { ...e, resource: maskFor(principal, e.resource, depth + 1) } : e)) } as Bundle;
  } else if (resource.resourceType === 'Parameters' && Array.isArray(resource.parameter)) {
    out = { ...resource, parameter: resource.parameter.map((p) => (p?.resource ? { ...p, resource: maskFor(principal, p.resource, depth + 1) } : p)) } as Parameters;
  }
  const contained = (out as { contained?: Resource[] }).contained;
  if (Array.isArray(contained) && contained.some((c) => c?.resourceType === 'Patient')) {
    const masked: Resource[] = contained.map((c) => maskFor(principal, c, depth + 1));
    out = { ...(out as object), contained: masked } as Resource;
  }
  return out;
}

/**
 * The engine's answer decorator. An answer given as exact bytes ($original) is left as it is. A caller
 * registered by its institution's identifier (`Organization?identifier=system|value`) is compared by the
 * Organization's id, looked up once per answer that holds a Patient.
 */
export const maskAnswers: ResponseDecorator = async (ctx, _req, res) => {
  if (!res.body || res.bytes || ctx.principal.kind === 'bootstrap') return res;
  let principal = ctx.principal;
  const conditional = principal.institution && /^Organization\?identifier=/.test(principal.institution);
  if (conditional && holdsPatient(res.body as Resource)) {
    const id = await organizationId(ctx.repo.connection, principal.institution!);
    principal = { ...principal, institution: id ? `Organization/${id}` : principal.institution };
  }
  const body = maskFor(principal, res.body as Resource);
  return body === res.body ? res : { ...res, body: body as typeof res.body };
};

function holdsPatient(r: Resource): boolean {
  return r.resourceType === 'Patient' || JSON.stringify(r).includes('"resourceType":"Patient"');
}

/** The id of the Organization `Organization?identifier=system|value` names (Organization identifiers are not sealed). */
async function organizationId(sql: Sql, reference: string): Promise<string | undefined> {
  const token = decodeURIComponent(reference.slice('Organization?identifier='.length));
  const bar = token.indexOf('|');
  const [system, value] = bar >= 0 ? [token.slice(0, bar), token.slice(bar + 1)] : [undefined, token];
  const rows = await sql.query<{ id: string }>(
    `SELECT i.id FROM idx_token i JOIN resource r ON r.type = i.type AND r.id = i.id AND NOT r.deleted
      WHERE i.type = 'Organization' AND i.param = 'identifier' AND i.code = $1 AND ($2::text IS NULL OR i.system = $2) LIMIT 2`,
    [value, system ?? null]
  );
  return rows.length === 1 ? rows[0]!.id : undefined;
}
