/**
 * References of a resource written on its own (create, update, patch — and each entry a transaction routes):
 * a conditional reference (`Patient?identifier=…`) is resolved to the one resource it matches, or the write is
 * refused (404 none, 412 several); a local reference (`urn:uuid:…`, `urn:oid:…`) names nothing outside a
 * transaction and is refused (400). A transaction rewrites both kinds before its entries get here
 * (bundle.ts), so what is left is the client's error. Bundles themselves (documents) keep their references.
 */
import type { Resource } from '@medplum/fhirtypes';
import { badRequest } from './errors.ts';

const CONDITIONAL_RE = /^[A-Z][A-Za-z]+\?/;
const LOCAL_RE = /^urn:(uuid|oid):/;

type Step = string | number;

/** The resource with its conditional references resolved (a copy when anything changed). */
export async function resolveWriteReferences(resource: Resource, resolve: (reference: string, where: string) => Promise<string>): Promise<Resource> {
  if (resource.resourceType === 'Bundle') return resource;
  const found: { steps: Step[]; reference: string }[] = [];
  collect(resource, found);
  if (found.length === 0) return resource;
  const copy = structuredClone(resource) as unknown as Record<string, unknown>;
  for (const { steps, reference } of found) {
    const where = `${resource.resourceType}${steps.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('')}`;
    if (LOCAL_RE.test(reference)) {
      throw badRequest(`Reference '${reference.slice(0, 80)}' is local to a transaction and names nothing here; send the resources together in a transaction Bundle`, where);
    }
    let holder: any = copy;
    for (const s of steps.slice(0, -1)) holder = holder[s];
    holder.reference = await resolve(reference, where);
  }
  return copy as unknown as Resource;
}

/** Every conditional or local `reference` string, by the steps that reach it (iterative: no stack overflow). */
function collect(root: unknown, out: { steps: Step[]; reference: string }[]): void {
  const stack: [unknown, Step[]][] = [[root, []]];
  while (stack.length > 0) {
    const [value, steps] = stack.pop()!;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) if (value[i] && typeof value[i] === 'object') stack.push([value[i], [...steps, i]]);
    } else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (k === 'reference' && typeof v === 'string') {
          if (CONDITIONAL_RE.test(v) || LOCAL_RE.test(v)) out.push({ steps: [...steps, k], reference: v });
        } else if (v && typeof v === 'object') stack.push([v, [...steps, k]]);
      }
    }
  }
}
