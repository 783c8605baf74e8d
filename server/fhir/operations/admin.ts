/**
 * Shared plumbing of administrative operations (e.g. importing a file): the
 * rights check, reading a file parameter, and turning row errors into an OperationOutcome that points at
 * each line.
 */
import type { Attachment, Binary, OperationOutcome, OperationOutcomeIssue, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, fail, FhirError } from '../errors.ts';
import type { FhirContext, FhirRequest } from '../router.ts';

/** The principal may write resources of `type` (SMART-style scopes: system/*.*, system/Type.*, system/Type.write). */
export function requireWrite(ctx: FhirContext, type: string, what: string): void {
  const scopes = ctx.principal?.scopes ?? [];
  // SMART v1 (`*`, `write`) or v2 letters with `u` (`cruds`, `ru`…), on the type or on every type
  const ok = scopes.some((s) => {
    const m = /^system\/([A-Za-z]+|\*)\.([a-z*]+)$/.exec(s);
    return !!m && (m[1] === '*' || m[1] === type) && (m[2] === '*' || m[2] === 'write' || /^c?r?ud?s?$/.test(m[2]));
  });
  if (!ok) throw fail(403, 'forbidden', `${what} needs the right to write ${type} resources`);
}

const IGNORED = new Set(['_format', '_pretty']);

/** The parameters of a POST operation: its Parameters body (if any) plus the query's parameters. */
export function parametersBody(req: FhirRequest, op: string): ParametersParameter[] {
  const query: ParametersParameter[] = req.query.filter(([k]) => !IGNORED.has(k)).map(([name, value]) => ({ name, valueString: value }));
  const body = req.body as Parameters | undefined;
  if (body instanceof URLSearchParams) return [...query, ...[...body].map(([name, value]) => ({ name, valueString: value }))];
  if (body === undefined || body === null || (body as unknown) === '') return query;
  if (typeof body !== 'object' || Array.isArray(body) || body.resourceType !== 'Parameters') throw badRequest(`$${op} takes a Parameters resource in a POST body`, 'resourceType');
  if (body.parameter !== undefined && !Array.isArray(body.parameter)) throw badRequest('Parameters.parameter must be an array', 'Parameters.parameter');
  return [...(body.parameter ?? []), ...query];
}

export const paramExpr = (name: string) => `Parameters.parameter.where(name='${name}')`;

export interface FileInput {
  data: Buffer;
  contentType?: string;
  name?: string;
}

/** A file given as `valueAttachment` (contentType, data, title) or as a Binary `resource`. */
export function fileParameter(params: ParametersParameter[], name: string, op: string): FileInput {
  const found = params.filter((p) => p.name === name);
  if (found.length === 0) throw badRequest(`$${op} needs the file: a '${name}' parameter with valueAttachment (or a Binary resource)`, paramExpr(name));
  if (found.length > 1) throw badRequest(`$${op}: the parameter '${name}' may appear only once`, paramExpr(name));
  const p = found[0];
  let data: string | undefined;
  let contentType: string | undefined;
  let title: string | undefined;
  if (p.valueAttachment && typeof p.valueAttachment === 'object') {
    const a = p.valueAttachment as Attachment;
    if (a.url && !a.data) throw badRequest(`$${op}: the file must be sent inline (Attachment.data), not by url`, `${paramExpr(name)}.valueAttachment.url`);
    data = a.data;
    contentType = a.contentType;
    title = a.title;
  } else if (p.resource?.resourceType === 'Binary') {
    const b = p.resource as Binary;
    data = b.data;
    contentType = b.contentType;
  } else {
    throw badRequest(`$${op}: '${name}' must be a valueAttachment or a Binary resource`, paramExpr(name));
  }
  if (typeof data !== 'string' || data.length === 0) throw badRequest(`$${op}: the file has no data`, paramExpr(name));
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(data)) throw badRequest(`$${op}: the file data is not base64`, paramExpr(name));
  return { data: Buffer.from(data, 'base64'), ...(contentType ? { contentType } : {}), ...(title ? { name: title } : {}) };
}

/** A problem at one line (and column) of an uploaded file. */
export interface RowError {
  line: number;
  column?: string;
  message: string;
}

const LINE_EXT = 'http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line';
/** At most this many row errors are listed (a summary issue says how many more). */
export const MAX_LISTED_ERRORS = 1000;

/** Row errors of an uploaded file as a 422 OperationOutcome: one issue per error, located at its line. */
export function rowErrors(errors: RowError[], param: string, summary: string): FhirError {
  const issue: OperationOutcomeIssue[] = errors.slice(0, MAX_LISTED_ERRORS).map((e) => ({
    severity: 'error',
    code: /duplicate/.test(e.message) ? 'duplicate' : /missing|empty/.test(e.message) ? 'required' : 'value',
    extension: [{ url: LINE_EXT, valueInteger: e.line }],
    details: { text: `line ${e.line}${e.column ? ` [${e.column}]` : ''}: ${e.message}` },
    location: [`line ${e.line}${e.column ? `, column ${e.column}` : ''}`],
    expression: [paramExpr(param)],
  }));
  if (errors.length > MAX_LISTED_ERRORS) {
    issue.push({ severity: 'error', code: 'too-costly', details: { text: `${errors.length - MAX_LISTED_ERRORS} more error(s) not listed` }, expression: [paramExpr(param)] });
  }
  issue.unshift({ severity: 'error', code: 'invalid', details: { text: summary }, expression: [paramExpr(param)] });
  const outcome: OperationOutcome = { resourceType: 'OperationOutcome', issue };
  return new FhirError(422, outcome);
}

/** One primitive parameter as text (string, code, date, boolean, integer…), at most once. */
export function primitiveParam(params: ParametersParameter[], name: string, op: string): string | undefined {
  const found = params.filter((p) => p.name === name);
  if (found.length > 1) throw badRequest(`$${op}: the parameter '${name}' may appear only once`, paramExpr(name));
  if (found.length === 0) return undefined;
  return primitiveOf(found[0], name, op);
}

export function primitiveParams(params: ParametersParameter[], name: string, op: string): string[] {
  return params.filter((p) => p.name === name).map((p) => primitiveOf(p, name, op));
}

function primitiveOf(p: ParametersParameter, name: string, op: string): string {
  for (const [k, v] of Object.entries(p)) {
    if (!k.startsWith('value')) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  }
  throw badRequest(`$${op}: the parameter '${name}' needs a primitive value`, paramExpr(name));
}

export function booleanParam(params: ParametersParameter[], name: string, op: string): boolean | undefined {
  const v = primitiveParam(params, name, op);
  if (v === undefined) return undefined;
  if (v !== 'true' && v !== 'false') throw badRequest(`$${op}: '${name}' must be true or false`, paramExpr(name));
  return v === 'true';
}

export function integerParam(params: ParametersParameter[], name: string, op: string, { min = 0, max = 1_000_000_000 } = {}): number | undefined {
  const v = primitiveParam(params, name, op);
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw badRequest(`$${op}: '${name}' must be an integer from ${min} to ${max}`, paramExpr(name));
  return Number(v);
}
