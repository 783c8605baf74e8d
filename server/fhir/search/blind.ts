/**
 * A search request rewritten for what the store holds: each clause's values pass through the installed
 * storage codec (engine.ts `StorageCodec.search`), so a parameter kept as a blind index is looked up by its
 * blind values. A chain reaches several target types at once (`subject.identifier`): its values are those of
 * every type (as given for a type the codec leaves alone, rewritten for one it blinds), in one OR.
 */
import type { StorageCodec } from '../engine.ts';
import type { Clause, SearchRequest } from './parse.ts';

export function blindRequest(codec: StorageCodec, req: SearchRequest): SearchRequest {
  let changed = false;
  const clauses = req.clauses.map((c) => {
    const out = blindClause(codec, [req.resourceType], c);
    if (out !== c) changed = true;
    return out;
  });
  return changed ? { ...req, clauses } : req;
}

function blindClause(codec: StorageCodec, types: readonly string[], clause: Clause): Clause {
  switch (clause.kind) {
    case 'param': {
      const found = types.map((t) => codec.search(t, clause.param, clause.modifier, clause.values));
      if (found.every((v) => v === undefined)) return clause;
      const values = new Set<string>();
      for (const v of found) for (const x of v ?? clause.values) values.add(x);
      return { ...clause, values: [...values] };
    }
    case 'chain': {
      const inner = blindClause(codec, clause.targetTypes, clause.inner);
      return inner === clause.inner ? clause : { ...clause, inner };
    }
    case 'has': {
      const inner = blindClause(codec, [clause.sourceType], clause.inner);
      return inner === clause.inner ? clause : { ...clause, inner };
    }
    default:
      return clause;
  }
}
