/**
 * The recognition catalogue as the recognition service sees it: each item with its QC category (the
 * catalogue *field*, e.g. F-613bc1 化学), kind, category, validity window, and the ways a hospital may code
 * it — the platform code, the national 15-digit code, the legacy price code (through the legacy → national →
 * platform ConceptMap) and a LOINC hint. Built from the terminology registry, once per catalogue edition.
 * Pure: no I/O.
 */
import type { Coding } from '@medplum/fhirtypes';
import { mappingKey, type ApprovedMapping, type ApprovedMappings } from '../dictionary/mappings.ts';
import type { CodeSystemIndex, IndexedConcept } from '../terminology/codesystem.ts';
import type { ConceptMapIndex } from '../terminology/conceptmap.ts';
import { CATALOGUE_SYSTEM, LEGACY_MAP_URL, LEGACY_SYSTEM, NATIONAL_SYSTEM } from '../terminology/canonical.ts';
import { LEGACY_CODE_RE, NATIONAL_CODE_RE } from '../terminology/catalogue-source.ts';
import { terminology } from '../terminology/load.ts';
import type { CatalogueItem } from './rules.ts';

export const LOINC_SYSTEM = 'http://loinc.org';

export interface Concept {
  code: string;
  display: string;
}

/** A catalogue item, in the shape the rules need (`category` = the field code) plus what the outputs show. */
export interface CatalogueEntry extends CatalogueItem {
  /** 检验 or 检查. */
  kind: string;
  /** LAB or EXAM (the kind grouping concept). */
  kindCode: string;
  field: Concept;
  group: Concept;
  /** Every grouping concept above the item (kind, field, category codes). */
  ancestors: ReadonlySet<string>;
  coding: Coding;
}

/** A token as sent by a client: `[system|]code`. */
export interface Token {
  system?: string;
  code: string;
}

/**
 * What a coding stands for: catalogue items (and, for an institution's local code, the approved dictionary
 * entry that maps it), or `invalid` for a code the platform's own systems reject.
 */
export type Resolution = { items: CatalogueEntry[]; mapping?: ApprovedMapping } | { invalid: string };

export class CatalogueView {
  readonly items = new Map<string, CatalogueEntry>();
  private readonly byNational = new Map<string, CatalogueEntry[]>();
  private readonly byLegacy = new Map<string, CatalogueEntry[]>();
  private readonly byLoinc = new Map<string, CatalogueEntry[]>();
  private readonly groupsByDisplay = new Map<string, string[]>();

  constructor(
    private readonly cs: CodeSystemIndex,
    private readonly map: ConceptMapIndex | undefined
  ) {
    for (const c of cs.ordered) {
      const level = cs.valuesOf(c, 'level')[0];
      if (level !== 'item') {
        if (c.display) push(this.groupsByDisplay, c.display, c.code);
        continue;
      }
      const entry = this.entry(c);
      if (!entry) continue;
      this.items.set(entry.code, entry);
      for (const v of cs.valuesOf(c, 'nationalCode')) push(this.byNational, v, entry);
      for (const v of cs.valuesOf(c, 'legacyCode')) push(this.byLegacy, v, entry);
      for (const v of cs.valuesOf(c, 'loinc')) push(this.byLoinc, v, entry);
    }
  }

  get version(): string | undefined {
    return this.cs.version;
  }

  private entry(c: IndexedConcept): CatalogueEntry | undefined {
    const parentOf = (x: IndexedConcept) => (x.parents[0] ? this.cs.get(x.parents[0]) : undefined);
    const group = parentOf(c);
    const field = group && parentOf(group);
    const kind = field && parentOf(field);
    if (!group || !field || !kind) return undefined;
    const window = c.properties.find((p) => p.code === 'windowDays')?.valueInteger;
    const retired = c.inactive ? (c.properties.find((p) => p.code === 'effectiveTo')?.valueDateTime ?? true) : undefined;
    return {
      code: c.code,
      display: c.display ?? c.code,
      category: field.code,
      categoryDisplay: field.display ?? field.code,
      ...(window !== undefined ? { windowDays: window } : {}),
      ...(retired !== undefined ? { retired } : {}),
      kind: this.cs.valuesOf(c, 'kind')[0] ?? kind.display ?? '',
      kindCode: kind.code,
      field: { code: field.code, display: field.display ?? field.code },
      group: { code: group.code, display: group.display ?? group.code },
      ancestors: c.ancestors,
      coding: { system: CATALOGUE_SYSTEM, code: c.code, display: c.display },
    };
  }

  item(code: string): CatalogueEntry | undefined {
    return this.items.get(code);
  }

  /**
   * The catalogue items a coding stands for. Lenient: a coding the platform cannot map gives no item.
   * Catalogue codes directly; national and legacy codes through the ConceptMap (and the items' own
   * properties); LOINC through the items' LOINC hint.
   */
  itemsFor(coding: Coding, local?: ApprovedMappings): CatalogueEntry[] {
    const r = this.resolve(coding, local);
    return 'items' in r ? r.items : [];
  }

  /**
   * Like itemsFor, but strict for the platform's own code systems: a code that is not in the catalogue,
   * a grouping concept, or a national/legacy code of the wrong shape is `invalid`. Codes of other systems
   * (a hospital's local codes, LOINC codes the catalogue does not list) resolve to no item — unless `local`
   * (the approved dictionary entries of the institution whose code it is) maps the local code to items.
   */
  resolve(coding: Coding, local?: ApprovedMappings): Resolution {
    const code = coding.code?.trim();
    if (!code) return { invalid: 'the coding has no code' };
    switch (coding.system) {
      case CATALOGUE_SYSTEM: {
        const item = this.items.get(code);
        if (item) return { items: [item] };
        if (this.cs.get(code)) return { invalid: `${code} is a grouping concept of the recognition catalogue, not an item` };
        return { invalid: `unknown code '${code}' in the recognition catalogue ${CATALOGUE_SYSTEM}` };
      }
      case NATIONAL_SYSTEM:
        if (!NATIONAL_CODE_RE.test(code)) return { invalid: `'${code}' is not a national medical-insurance service code (15 digits)` };
        return { items: this.mapped(NATIONAL_SYSTEM, code, this.byNational) };
      case LEGACY_SYSTEM:
        if (!LEGACY_CODE_RE.test(code)) return { invalid: `'${code}' is not a legacy price code (9 or 11 digits)` };
        return { items: this.mapped(LEGACY_SYSTEM, code, this.byLegacy) };
      case LOINC_SYSTEM: {
        const items = this.byLoinc.get(code) ?? [];
        return items.length > 0 ? { items } : this.local(coding.system, code, local);
      }
      default:
        return this.local(coding.system, code, local);
    }
  }

  /** A local code through the institution's approved dictionary entry, if it has one. */
  private local(system: string | undefined, code: string, local: ApprovedMappings | undefined): Resolution {
    const mapping = system && local?.get(mappingKey(system, code));
    if (!mapping) return { items: [] };
    const items = mapping.targets.map((t) => this.items.get(t)).filter((i): i is CatalogueEntry => !!i);
    return items.length > 0 ? { items, mapping } : { items: [] };
  }

  private mapped(system: string, code: string, byProperty: Map<string, CatalogueEntry[]>): CatalogueEntry[] {
    const out = new Map<string, CatalogueEntry>();
    for (const m of this.map?.translate(system, code) ?? []) {
      if (m.concept.system !== CATALOGUE_SYSTEM || !m.concept.code || m.equivalence === 'unmatched' || m.equivalence === 'disjoint') continue;
      const item = this.items.get(m.concept.code);
      if (item) out.set(item.code, item);
    }
    for (const item of byProperty.get(code) ?? []) out.set(item.code, item);
    return [...out.values()];
  }

  /**
   * The catalogue concepts a category token names: a code of the catalogue (kind LAB/EXAM, field F-…,
   * category C-…, or an item), or the Chinese name of a kind, field or category (检验, 化学, 血常规).
   * Undefined when the token names nothing in the catalogue.
   */
  groupCodes(token: Token): Set<string> | undefined {
    if (token.system !== undefined && token.system !== CATALOGUE_SYSTEM) return undefined;
    if (this.cs.get(token.code)) return new Set([token.code]);
    const byName = this.groupsByDisplay.get(token.code);
    return byName ? new Set(byName) : undefined;
  }

  /** Whether an item falls under any of the grouping codes. */
  static within(item: CatalogueEntry, codes: ReadonlySet<string>): boolean {
    if (codes.has(item.code)) return true;
    for (const a of item.ancestors) if (codes.has(a)) return true;
    return false;
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) {
    if (!list.includes(value)) list.push(value);
  } else map.set(key, [value]);
}

const views = new WeakMap<CodeSystemIndex, CatalogueView>();

/** The catalogue of the edition the terminology registry holds now. */
export function currentCatalogue(): CatalogueView {
  const cs = terminology.codeSystem(CATALOGUE_SYSTEM);
  if (!cs) throw new Error('The recognition catalogue is not loaded');
  let view = views.get(cs);
  if (!view) {
    view = new CatalogueView(cs, terminology.conceptMap(LEGACY_MAP_URL));
    views.set(cs, view);
  }
  return view;
}
