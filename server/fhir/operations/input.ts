/**
 * Reading an operation's input from a GET query or a POST Parameters body (or form), and naming a parameter in
 * errors the way the caller sent it (`name` in a query, `Parameters.parameter.where(name='…')` in a body).
 * `StrictInput` also refuses unknown parameters and reads tokens, references and identifiers.
 */
import type { CodeableConcept, Coding, OperationOutcomeIssue, Parameters, ParametersParameter, Reference, Resource } from '@medplum/fhirtypes';
import { badRequest, fail, FhirError } from '../errors.ts';
import type { FhirRequest, FhirResponse } from '../router.ts';

/** An error of domain code that names the parameter at fault (mapped to an OperationOutcome by `OpInput.error`). */
export interface ParameterError {
  status: number;
  code: string;
  message: string;
  param?: string;
}

/** A token (`system|code`, or `code`). */
export interface Token {
  system?: string;
  code: string;
}

const IGNORED = new Set(['_format', '_pretty']);

export class OpInput {
  private readonly params: ParametersParameter[];
  readonly posted: boolean;

  constructor(
    readonly op: string,
    req: FhirRequest
  ) {
    const body = req.body;
    this.posted = req.method.toUpperCase() === 'POST' && body !== undefined && !(body instanceof URLSearchParams);
    if (req.method.toUpperCase() === 'POST' && body !== undefined && !(body instanceof URLSearchParams)) {
      const p = body as Parameters;
      if (!p || typeof p !== 'object' || Array.isArray(p) || p.resourceType !== 'Parameters') {
        throw badRequest(`$${op} takes a Parameters resource in a POST body`, 'resourceType');
      }
      if (p.parameter !== undefined && !Array.isArray(p.parameter)) throw badRequest('Parameters.parameter must be an array', 'Parameters.parameter');
      this.params = [...(p.parameter ?? []), ...queryParams(req.query)];
    } else {
      const form = body instanceof URLSearchParams ? ([...body] as [string, string][]) : [];
      this.params = queryParams([...req.query, ...form]);
    }
  }

  /** A FHIRPath-ish expression for a parameter, as the caller sent it. */
  expr(name: string): string {
    return this.posted ? `Parameters.parameter.where(name='${name}')` : name;
  }

  error(err: ParameterError): FhirError {
    return fail(err.status, err.code as OperationOutcomeIssue['code'], err.message, err.param ? this.expr(err.param) : undefined);
  }

  private all(name: string): ParametersParameter[] {
    return this.params.filter((p) => p.name === name);
  }

  /** Every repetition of a parameter, as sent (GET query values arrive as valueString). */
  list(name: string): ParametersParameter[] {
    return this.all(name);
  }

  /** The names of the parameters sent. */
  names(): string[] {
    return [...new Set(this.params.map((p) => p.name as string))];
  }

  has(name: string): boolean {
    return this.all(name).length > 0;
  }

  /** A primitive parameter as a string (string, code, uri, canonical, integer, boolean…). */
  string(name: string): string | undefined {
    const found = this.all(name);
    if (found.length > 1) throw badRequest(`$${this.op}: the parameter '${name}' may appear only once`, this.expr(name));
    if (found.length === 0) return undefined;
    const v = primitive(found[0]);
    if (v === undefined) throw badRequest(`$${this.op}: the parameter '${name}' needs a primitive value`, this.expr(name));
    return v;
  }

  strings(name: string): string[] {
    return this.all(name).flatMap((p) => {
      const v = primitive(p);
      return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
    });
  }

  /** A non-empty string parameter (rejecting empty or whitespace-only values). */
  text(name: string): string | undefined {
    const v = this.string(name);
    if (v !== undefined && v.trim() === '') throw badRequest(`$${this.op}: the parameter '${name}' is empty`, this.expr(name));
    return v;
  }

  integer(name: string, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw badRequest(`$${this.op}: '${name}' must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, not '${v.slice(0, 20)}'`, this.expr(name));
    }
    return Number(v);
  }

  boolean(name: string): boolean | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw badRequest(`$${this.op}: '${name}' must be true or false`, this.expr(name));
    return v === 'true';
  }

  coding(name: string): Coding | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const p = found[0];
    if (p.valueCoding && typeof p.valueCoding === 'object') return p.valueCoding;
    // GET form: system|code
    const v = primitive(p);
    if (v !== undefined && v.includes('|')) {
      const [system, code] = v.split('|', 2);
      return { system: system || undefined, code };
    }
    throw badRequest(`$${this.op}: '${name}' must be a Coding (or system|code in a query)`, this.expr(name));
  }

  codeableConcept(name: string): CodeableConcept | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const cc = found[0].valueCodeableConcept;
    if (!cc || typeof cc !== 'object') throw badRequest(`$${this.op}: '${name}' must be a CodeableConcept`, this.expr(name));
    return cc;
  }

  resource<T extends Resource>(name: string, type: T['resourceType']): T | undefined {
    const found = this.all(name);
    if (found.length === 0) return undefined;
    const r = found[0].resource;
    if (!r || r.resourceType !== type) throw badRequest(`$${this.op}: '${name}' must be a ${type} resource`, this.expr(name));
    return r as T;
  }
}

function queryParams(pairs: [string, string][]): ParametersParameter[] {
  return pairs.filter(([k]) => !IGNORED.has(k)).map(([name, value]) => ({ name, valueString: value }));
}

function primitive(p: ParametersParameter): string | undefined {
  const rec = p as unknown as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    if (!key.startsWith('value')) continue;
    const v = rec[key];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  }
  return undefined;
}

/** An operation's input that takes only the named parameters. */
export class StrictInput extends OpInput {
  constructor(op: string, req: FhirRequest, allowed: string[]) {
    super(op, req);
    const known = new Set(allowed);
    for (const name of this.names()) {
      if (!known.has(name)) throw badRequest(`$${op}: unknown parameter '${String(name).slice(0, 40)}' (known: ${allowed.join(', ')})`, this.expr(String(name).slice(0, 40)));
    }
  }

  /** Token parameters (0..*): `system|code` or `code` in a query (commas separate values), or valueCoding. */
  tokens(name: string): Token[] {
    const out: Token[] = [];
    for (const p of this.list(name)) {
      if (p.valueCoding) {
        if (!p.valueCoding.code) throw badRequest(`$${this.op}: '${name}' has a Coding without a code`, this.expr(name));
        out.push({ ...(p.valueCoding.system ? { system: p.valueCoding.system } : {}), code: p.valueCoding.code });
        continue;
      }
      const text = p.valueString ?? p.valueCode ?? p.valueUri;
      if (typeof text !== 'string') throw badRequest(`$${this.op}: '${name}' must be a token (system|code) or a Coding`, this.expr(name));
      for (const v of text.split(',').map((s) => s.trim())) {
        if (v === '') throw badRequest(`$${this.op}: '${name}' is empty`, this.expr(name));
        const i = v.indexOf('|');
        const system = i < 0 ? undefined : v.slice(0, i);
        const code = i < 0 ? v : v.slice(i + 1);
        if (code === '') throw badRequest(`$${this.op}: '${name}' has no code after the '|'`, this.expr(name));
        out.push({ ...(system ? { system } : {}), code });
      }
    }
    return out;
  }

  /** A Reference parameter (0..1): valueReference, or `Type/id` / `Type?identifier=system|value` as text. */
  reference(name: string): Reference | undefined {
    const found = this.list(name);
    if (found.length > 1) throw badRequest(`$${this.op}: '${name}' may appear only once`, this.expr(name));
    if (found.length === 0) return undefined;
    const p = found[0] as ParametersParameter;
    if (p.valueReference && typeof p.valueReference === 'object') {
      const r = p.valueReference;
      if (!r.reference && !r.identifier?.value) throw badRequest(`$${this.op}: '${name}' needs a reference or an identifier`, this.expr(name));
      return { ...(r.reference ? { reference: r.reference } : {}), ...(r.identifier ? { identifier: r.identifier } : {}) };
    }
    const text = p.valueString ?? p.valueUri;
    if (typeof text !== 'string' || text.trim() === '') throw badRequest(`$${this.op}: '${name}' must be a Reference`, this.expr(name));
    return { reference: text.trim() };
  }

  /** An identifier parameter: `system|value` (token) or valueIdentifier. */
  identifier(name: string): { system?: string; value: string } | undefined {
    const found = this.list(name);
    if (found.length > 1) throw badRequest(`$${this.op}: '${name}' may appear only once`, this.expr(name));
    if (found.length === 0) return undefined;
    const p = found[0];
    if (p.valueIdentifier) {
      if (!p.valueIdentifier.value) throw badRequest(`$${this.op}: '${name}' has no value`, this.expr(name));
      return { ...(p.valueIdentifier.system ? { system: p.valueIdentifier.system } : {}), value: p.valueIdentifier.value };
    }
    const text = p.valueString;
    if (typeof text !== 'string' || text.trim() === '') throw badRequest(`$${this.op}: '${name}' must be system|value`, this.expr(name));
    const i = text.indexOf('|');
    const value = i < 0 ? text : text.slice(i + 1);
    if (value === '') throw badRequest(`$${this.op}: '${name}' has no value after the '|'`, this.expr(name));
    return { ...(i > 0 ? { system: text.slice(0, i) } : {}), value };
  }

  /** A Coding parameter (0..1): valueCoding, or `system|code` / `code` as text. */
  codingParam(name: string): Coding | undefined {
    const tokens = this.tokens(name);
    if (tokens.length > 1) throw badRequest(`$${this.op}: '${name}' may appear only once`, this.expr(name));
    return tokens[0] ? { ...(tokens[0].system ? { system: tokens[0].system } : {}), code: tokens[0].code } : undefined;
  }

  /** The resources of a repeated resource parameter (anything else there is reported by the service). */
  resources(name: string): unknown[] {
    return this.list(name).map((p) => (p.resource !== undefined ? p.resource : null));
  }

}

export function parametersResponse(parameter: ParametersParameter[]): FhirResponse {
  const body: Parameters = { resourceType: 'Parameters', parameter };
  return { status: 200, body };
}
