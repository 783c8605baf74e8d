/** Reading FHIR reference strings: `Type/id`, `Type/id/_history/v`, or an absolute URL ending so. */

export interface ParsedReference {
  type: string;
  id: string;
  version?: string;
}

const REF_RE = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;

export function parseReference(reference: string): ParsedReference | undefined {
  if (reference.startsWith('#') || reference.startsWith('urn:')) return undefined;
  const m = REF_RE.exec(reference);
  if (!m) return undefined;
  return { type: m[1], id: m[2], version: m[3] };
}
