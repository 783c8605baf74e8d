/**
 * Item prices for the estimated saving (docs/monitoring.md "Saving"): the `price` property (元, CNY) of the
 * recognition catalogue's items, as the stored CodeSystem carries it (the catalogue import's `price_cny`
 * column). A report's item is found by its coding: a platform code, a national code, or a legacy code that names
 * one item only. The index is rebuilt when the catalogue's stored version changes.
 */
import type { CodeSystem, CodeSystemConcept, CodeableConcept } from '@medplum/fhirtypes';
import type { Sql } from '../db/database.ts';
import { CATALOGUE_SYSTEM, LEGACY_SYSTEM, NATIONAL_SYSTEM } from '../terminology/canonical.ts';

interface PriceIndex {
  version: number;
  byCode: Map<string, number>;
  byNational: Map<string, number>;
  byLegacy: Map<string, number | null>;
}

export class CataloguePrices {
  private index?: PriceIndex;

  private async load(sql: Sql): Promise<PriceIndex | undefined> {
    const [head] = await sql.query<{ version: number }>(`SELECT version FROM resource WHERE type = 'CodeSystem' AND id = 'recognition-catalogue' AND NOT deleted`);
    if (!head) return undefined;
    if (this.index?.version === Number(head.version)) return this.index;
    const [row] = await sql.query<{ version: number; content: CodeSystem | string }>(`SELECT version, content FROM resource WHERE type = 'CodeSystem' AND id = 'recognition-catalogue'`);
    const cs = typeof row.content === 'string' ? (JSON.parse(row.content) as CodeSystem) : row.content;
    const index: PriceIndex = { version: Number(row.version), byCode: new Map(), byNational: new Map(), byLegacy: new Map() };
    const walk = (concepts: CodeSystemConcept[] | undefined) => {
      for (const c of concepts ?? []) {
        const price = c.property?.find((p) => p.code === 'price')?.valueDecimal;
        if (price !== undefined && c.code) {
          index.byCode.set(c.code, price);
          const national = c.property?.find((p) => p.code === 'nationalCode')?.valueCode;
          if (national) index.byNational.set(national, price);
          const legacy = c.property?.find((p) => p.code === 'legacyCode')?.valueCode;
          // an old price code that several items split names none of them
          if (legacy) index.byLegacy.set(legacy, index.byLegacy.has(legacy) ? null : price);
        }
        walk(c.concept);
      }
    };
    walk(cs.concept);
    this.index = index;
    return index;
  }

  /** The price (元) of the item a report is coded with, or undefined when the catalogue gives none. */
  async priceOf(sql: Sql, code: CodeableConcept | undefined): Promise<number | undefined> {
    if (!code?.coding?.length) return undefined;
    const index = await this.load(sql);
    if (!index) return undefined;
    for (const c of code.coding) {
      if (!c.code) continue;
      const price = c.system === CATALOGUE_SYSTEM ? index.byCode.get(c.code) : c.system === NATIONAL_SYSTEM ? index.byNational.get(c.code) : c.system === LEGACY_SYSTEM ? index.byLegacy.get(c.code) : undefined;
      if (price !== undefined && price !== null) return price;
    }
    return undefined;
  }
}
