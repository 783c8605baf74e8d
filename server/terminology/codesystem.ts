/**
 * An in-memory index of one CodeSystem: every concept by code (O(1)), its parents, ancestors and children,
 * its properties by code, and a lower-cased search text for `$expand?filter=`. Built once per loaded
 * CodeSystem version.
 */
import type { CodeSystem, CodeSystemConcept, CodeSystemConceptDesignation, CodeSystemConceptProperty, ValueSetComposeIncludeFilter } from '@medplum/fhirtypes';
import { TerminologyError } from './errors.ts';

export interface IndexedConcept {
  code: string;
  display?: string;
  definition?: string;
  designations: CodeSystemConceptDesignation[];
  properties: CodeSystemConceptProperty[];
  parents: string[];
  children: string[];
  /** Every ancestor code (transitively), for subsumption. */
  ancestors: Set<string>;
  /** Not selectable (a grouping concept): `notSelectable` true, or `abstract`. */
  abstract: boolean;
  /** Retired, deprecated or `inactive`. */
  inactive: boolean;
  /** Lower-cased code, display and designations, for text filters. */
  text: string;
}

export class CodeSystemIndex {
  readonly url: string;
  readonly version?: string;
  readonly concepts = new Map<string, IndexedConcept>();
  /** Concepts in document order (depth first). */
  readonly ordered: IndexedConcept[] = [];
  private readonly caseSensitive: boolean;
  private readonly propertyValues = new Map<string, Map<string, IndexedConcept[]>>();

  constructor(readonly resource: CodeSystem) {
    if (!resource.url) throw new TerminologyError(400, 'invalid', 'A CodeSystem needs a url to be used for terminology operations');
    this.url = resource.url;
    this.version = resource.version;
    this.caseSensitive = resource.caseSensitive !== false;
    const walk = (concepts: CodeSystemConcept[] | undefined, parent: IndexedConcept | undefined) => {
      for (const c of concepts ?? []) {
        if (!c.code) continue;
        const key = this.key(c.code);
        let entry = this.concepts.get(key);
        if (!entry) {
          const properties = c.property ?? [];
          const status = properties.find((p) => p.code === 'status')?.valueCode;
          entry = {
            code: c.code,
            display: c.display,
            definition: c.definition,
            designations: c.designation ?? [],
            properties,
            parents: [],
            children: [],
            ancestors: new Set(),
            abstract: properties.some((p) => (p.code === 'notSelectable' || p.code === 'abstract') && p.valueBoolean === true),
            inactive:
              status === 'retired' ||
              status === 'deprecated' ||
              status === 'inactive' ||
              properties.some((p) => p.code === 'inactive' && p.valueBoolean === true),
            text: [c.code, c.display ?? '', ...(c.designation ?? []).map((d) => d.value ?? '')].join('\u0000').toLowerCase(),
          };
          this.concepts.set(key, entry);
          this.ordered.push(entry);
        }
        if (parent && !entry.parents.includes(parent.code)) {
          entry.parents.push(parent.code);
          parent.children.push(entry.code);
        }
        walk(c.concept, entry);
      }
    };
    walk(resource.concept, undefined);
    // flat hierarchies expressed with the `parent` property
    for (const entry of this.ordered) {
      for (const p of entry.properties) {
        if (p.code !== 'parent' || !p.valueCode) continue;
        const parent = this.concepts.get(this.key(p.valueCode));
        if (parent && !entry.parents.includes(parent.code)) {
          entry.parents.push(parent.code);
          parent.children.push(entry.code);
        }
      }
    }
    for (const entry of this.ordered) {
      const stack = [...entry.parents];
      while (stack.length > 0) {
        const code = stack.pop() as string;
        if (entry.ancestors.has(code)) continue;
        entry.ancestors.add(code);
        stack.push(...(this.concepts.get(this.key(code))?.parents ?? []));
      }
    }
  }

  get complete(): boolean {
    return this.resource.content === 'complete' || this.resource.content === undefined;
  }

  get name(): string {
    return this.resource.title ?? this.resource.name ?? this.url;
  }

  get(code: string): IndexedConcept | undefined {
    return this.concepts.get(this.key(code));
  }

  /** `a` subsumes `b` when a is b or one of b's ancestors. */
  subsumes(a: IndexedConcept, b: IndexedConcept): boolean {
    return a.code === b.code || b.ancestors.has(a.code);
  }

  /** The concepts matching one ValueSet include filter (property / hierarchy / regex / exists). */
  filter(f: ValueSetComposeIncludeFilter): IndexedConcept[] {
    const { property, op, value } = f;
    if (!property || !op || value === undefined) throw new TerminologyError(400, 'invalid', 'A ValueSet filter needs property, op and value');
    if (property === 'concept' || property === 'code') {
      switch (op) {
        case 'is-a':
        case 'descendent-of': {
          const root = this.get(value);
          if (!root) return [];
          return this.ordered.filter((c) => (op === 'is-a' && c.code === root.code) || c.ancestors.has(root.code));
        }
        case 'is-not-a': {
          const root = this.get(value);
          if (!root) return this.ordered;
          return this.ordered.filter((c) => c.code !== root.code && !c.ancestors.has(root.code));
        }
        case 'generalizes': {
          const start = this.get(value);
          if (!start) return [];
          return this.ordered.filter((c) => c.code === start.code || start.ancestors.has(c.code));
        }
        case '=':
          return this.ordered.filter((c) => c.code === value);
        case 'in': {
          const set = new Set(value.split(',').map((v) => v.trim()));
          return this.ordered.filter((c) => set.has(c.code));
        }
        case 'regex':
          return this.regexFilter(value, (c) => [c.code]);
      }
    }
    if (property === 'display' && op === 'regex') return this.regexFilter(value, (c) => [c.display ?? '']);
    switch (op) {
      case '=':
        return this.byProperty(property).get(value) ?? [];
      case 'in': {
        const wanted = new Set(value.split(',').map((v) => v.trim()));
        return this.ordered.filter((c) => this.valuesOf(c, property).some((v) => wanted.has(v)));
      }
      case 'not-in': {
        const wanted = new Set(value.split(',').map((v) => v.trim()));
        return this.ordered.filter((c) => !this.valuesOf(c, property).some((v) => wanted.has(v)));
      }
      case 'exists': {
        const want = value === 'true';
        if (value !== 'true' && value !== 'false') throw new TerminologyError(400, 'invalid', `The exists filter takes true or false, not '${value}'`);
        return this.ordered.filter((c) => (this.valuesOf(c, property).length > 0) === want);
      }
      case 'regex':
        return this.regexFilter(value, (c) => this.valuesOf(c, property));
    }
    throw new TerminologyError(400, 'not-supported', `The filter '${property} ${op}' is not supported on ${this.url}`);
  }

  private regexFilter(pattern: string, values: (c: IndexedConcept) => string[]): IndexedConcept[] {
    let re: RegExp;
    try {
      if (pattern.length > 200) throw new Error('too long');
      re = new RegExp(`^(?:${pattern})$`, 'u');
    } catch {
      throw new TerminologyError(400, 'invalid', `Invalid regular expression '${pattern.slice(0, 50)}'`);
    }
    return this.ordered.filter((c) => values(c).some((v) => re.test(v)));
  }

  /** The values of one property of a concept, as strings (codes, strings, numbers, booleans, Coding codes). */
  valuesOf(c: IndexedConcept, property: string): string[] {
    const out: string[] = [];
    for (const p of c.properties) {
      if (p.code !== property) continue;
      const v =
        p.valueCode ?? p.valueString ?? p.valueCoding?.code ?? p.valueDateTime ??
        (p.valueInteger !== undefined ? String(p.valueInteger) : undefined) ??
        (p.valueBoolean !== undefined ? String(p.valueBoolean) : undefined) ??
        (p.valueDecimal !== undefined ? String(p.valueDecimal) : undefined);
      if (v !== undefined) out.push(v);
    }
    if (property === 'parent') out.push(...c.parents);
    if (property === 'child') out.push(...c.children);
    return out;
  }

  /** Concepts by value of one property (built on first use). */
  private byProperty(property: string): Map<string, IndexedConcept[]> {
    let map = this.propertyValues.get(property);
    if (!map) {
      map = new Map();
      for (const c of this.ordered) {
        for (const v of this.valuesOf(c, property)) {
          const list = map.get(v);
          if (list) list.push(c);
          else map.set(v, [c]);
        }
      }
      this.propertyValues.set(property, map);
    }
    return map;
  }

  private key(code: string): string {
    return this.caseSensitive ? code : code.toLowerCase();
  }
}
