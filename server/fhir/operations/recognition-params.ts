/**
 * Input plumbing shared by the recognition operations: tokens, references and identifiers read from a GET
 * query or a POST Parameters body, unknown parameters refused, and the service's RecognitionErrors turned
 * into 4xx OperationOutcomes whose expression names the parameter as the caller sent it.
 */
import type { Coding, ParametersParameter, Reference } from '@medplum/fhirtypes';
import { badRequest } from '../errors.ts';
import type { FhirRequest } from '../router.ts';
import { RecognitionError, toFhirError } from '../../recognition/service.ts';
import type { Token } from '../../recognition/catalogue.ts';
import { OpInput } from './terminology-params.ts';

export class RecognitionInput extends OpInput {
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

  /** Runs service code, mapping its RecognitionErrors to OperationOutcomes with this input's expressions. */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RecognitionError) throw toFhirError(err, (param) => this.expr(param));
      throw err;
    }
  }
}
