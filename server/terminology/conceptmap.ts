/** An index of one ConceptMap for `$translate`: source system|code → targets, and the reverse. */
import type { Coding, ConceptMap, ConceptMapGroupUnmapped } from '@medplum/fhirtypes';

export interface Match {
  equivalence: string;
  concept: Coding;
  /** The ConceptMap the match comes from. */
  source: string;
  comment?: string;
}

export class ConceptMapIndex {
  readonly url?: string;
  readonly version?: string;
  private readonly forward = new Map<string, Match[]>();
  private readonly backward = new Map<string, Match[]>();
  private readonly unmapped: { source?: string; target?: string; rule: ConceptMapGroupUnmapped }[] = [];

  constructor(readonly resource: ConceptMap) {
    this.url = resource.url;
    this.version = resource.version;
    const from = resource.url ?? (resource.id ? `ConceptMap/${resource.id}` : 'ConceptMap');
    for (const group of resource.group ?? []) {
      const source = group.source ?? '';
      const target = group.target ?? '';
      for (const element of group.element ?? []) {
        if (!element.code) continue;
        for (const t of element.target ?? []) {
          const equivalence = t.equivalence ?? 'equivalent';
          if (t.code) {
            push(this.forward, `${source}|${element.code}`, {
              equivalence,
              concept: { system: target, ...(group.targetVersion ? { version: group.targetVersion } : {}), code: t.code, ...(t.display ? { display: t.display } : {}) },
              source: from,
              ...(t.comment ? { comment: t.comment } : {}),
            });
            push(this.backward, `${target}|${t.code}`, {
              equivalence: reverseEquivalence(equivalence),
              concept: { system: source, ...(group.sourceVersion ? { version: group.sourceVersion } : {}), code: element.code, ...(element.display ? { display: element.display } : {}) },
              source: from,
              ...(t.comment ? { comment: t.comment } : {}),
            });
          } else if (equivalence === 'unmatched') {
            push(this.forward, `${source}|${element.code}`, { equivalence, concept: { system: target }, source: from, ...(t.comment ? { comment: t.comment } : {}) });
          }
        }
      }
      if (group.unmapped) this.unmapped.push({ source: group.source, target: group.target, rule: group.unmapped });
    }
  }

  /** Targets of `system|code` (or sources, when reverse). */
  translate(system: string, code: string, reverse = false): Match[] {
    const found = (reverse ? this.backward : this.forward).get(`${system}|${code}`);
    if (found?.length || reverse) return found ?? [];
    const from = this.resource.url ?? 'ConceptMap';
    const out: Match[] = [];
    for (const u of this.unmapped) {
      if (u.source !== system) continue;
      if (u.rule.mode === 'provided') out.push({ equivalence: 'equal', concept: { system: u.target, code }, source: from });
      else if (u.rule.mode === 'fixed' && u.rule.code) out.push({ equivalence: 'equivalent', concept: { system: u.target, code: u.rule.code, ...(u.rule.display ? { display: u.rule.display } : {}) }, source: from });
    }
    return out;
  }

  /** Whether the map has any group from `system` (or to it, when reverse). */
  covers(system: string, reverse = false): boolean {
    return (this.resource.group ?? []).some((g) => (reverse ? g.target : g.source) === system);
  }
}

function push(map: Map<string, Match[]>, key: string, match: Match): void {
  const list = map.get(key);
  if (list) list.push(match);
  else map.set(key, [match]);
}

/** The equivalence seen from the other side: wider ↔ narrower, subsumes ↔ specializes. */
function reverseEquivalence(e: string): string {
  switch (e) {
    case 'wider':
      return 'narrower';
    case 'narrower':
      return 'wider';
    case 'subsumes':
      return 'specializes';
    case 'specializes':
      return 'subsumes';
    default:
      return e;
  }
}
