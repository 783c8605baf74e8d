/**
 * The approved entries of each institution's dictionary maps (已通过的本地编码映射), as the recognition service
 * uses them: a report coded with the performing institution's local code, or an order coded with the
 * requester's, stands for the catalogue item(s) its approved entry maps to.
 *
 * Only entries that are approved, still in the uploaded map and mapped to a target count (an entry approved as
 * "not in the catalogue" maps to nothing). The maps of an institution are its dictionary maps (ConceptMap with
 * `useContext` venue = Reference(Organization/<id>)), brought up to their current version before they are read.
 *
 * Cached per database and institution: the recognition checks read the cache, not the tables. The cache of a
 * database is dropped when one of its transactions writes a ConceptMap (the write observer below) and when a
 * review status changes (store.ts setStatus); changes made by another server process on the same database are
 * seen after at most `CACHE_TTL_MS`.
 */
import type { ConceptMap } from '@medplum/fhirtypes';
import type { Database } from '../db/database.ts';
import type { TxWrites, WriteObserver } from '../fhir/repository.ts';
import { isDictionaryMap, syncMap } from './store.ts';

/** How long another process's change may go unseen. */
export const CACHE_TTL_MS = 30_000;

export interface ApprovedMapping {
  /** The map (ConceptMap id) whose entry this is. */
  map: string;
  system: string;
  code: string;
  display?: string;
  /** Catalogue item codes. */
  targets: string[];
}

/** `system|code` → the approved entry. */
export type ApprovedMappings = ReadonlyMap<string, ApprovedMapping>;

export const mappingKey = (system: string | undefined, code: string | undefined): string => `${system ?? ''}|${code ?? ''}`;

const EMPTY: ApprovedMappings = new Map();

interface Cache {
  generation: number;
  byOrg: Map<string, { at: number; mappings: ApprovedMappings }>;
}
const caches = new WeakMap<Database, Cache>();

function cacheOf(db: Database): Cache {
  let cache = caches.get(db);
  if (!cache) {
    cache = { generation: 0, byOrg: new Map() };
    caches.set(db, cache);
  }
  return cache;
}

/** Drops the cached mappings of a database (every institution). */
export function invalidateMappings(db: Database): void {
  const cache = cacheOf(db);
  cache.generation++;
  cache.byOrg.clear();
}

/** The approved mappings of each of the institutions (an institution without any gets an empty map). */
export async function approvedMappings(db: Database, organizationIds: Iterable<string>, now = Date.now()): Promise<Map<string, ApprovedMappings>> {
  const cache = cacheOf(db);
  const out = new Map<string, ApprovedMappings>();
  const missing: string[] = [];
  for (const id of new Set(organizationIds)) {
    if (!id) continue;
    const hit = cache.byOrg.get(id);
    if (hit && now - hit.at < CACHE_TTL_MS) out.set(id, hit.mappings);
    else missing.push(id);
  }
  if (missing.length === 0) return out;
  const generation = cache.generation;
  const loaded = await loadMappings(db, missing);
  for (const id of missing) {
    const mappings = loaded.get(id) ?? EMPTY;
    out.set(id, mappings);
    if (cache.generation === generation) cache.byOrg.set(id, { at: now, mappings });
  }
  return out;
}

/** The approved mappings of one institution. */
export async function approvedMappingsOf(db: Database, organizationId: string | undefined): Promise<ApprovedMappings> {
  if (!organizationId) return EMPTY;
  return (await approvedMappings(db, [organizationId])).get(organizationId) ?? EMPTY;
}

async function loadMappings(db: Database, organizationIds: string[]): Promise<Map<string, Map<string, ApprovedMapping>>> {
  const venues = organizationIds.map((id) => JSON.stringify([{ valueReference: { reference: `Organization/${id}` } }]));
  const maps = (
    await db.query<{ id: string; content: ConceptMap }>(
      "SELECT id, content FROM resource WHERE type = 'ConceptMap' AND NOT deleted AND content->'useContext' @> ANY($1::jsonb[]) ORDER BY id",
      [venues]
    )
  ).filter((m) => isDictionaryMap(m.content));
  const orgOfMap = new Map<string, string>();
  for (const m of maps) {
    const { organization } = await syncMap(db, m.id);
    if (organization && organizationIds.includes(organization)) orgOfMap.set(m.id, organization);
  }
  const out = new Map<string, Map<string, ApprovedMapping>>();
  if (orgOfMap.size === 0) return out;
  const rows = await db.query<{ map_id: string; source_system: string; code: string; display: string | null; target_code: string }>(
    `SELECT map_id, source_system, code, display, target_code FROM dictionary_entry
      WHERE map_id = ANY($1::text[]) AND status = 'approved' AND in_map AND target_code IS NOT NULL
      ORDER BY map_id, source_system, code`,
    [[...orgOfMap.keys()]]
  );
  for (const r of rows) {
    const org = orgOfMap.get(r.map_id) as string;
    let mappings = out.get(org);
    if (!mappings) out.set(org, (mappings = new Map()));
    const key = mappingKey(r.source_system, r.code);
    if (mappings.has(key)) continue; // the first map (by id) that approves the code
    mappings.set(key, { map: r.map_id, system: r.source_system, code: r.code, ...(r.display ? { display: r.display } : {}), targets: r.target_code.split(' ') });
  }
  return out;
}

/** Drops a database's cached mappings after a transaction that wrote a ConceptMap commits. */
export function mappingsObserver(db: Database): WriteObserver {
  return {
    onlyAlongside: () => true,
    async beforeCommit() {},
    afterCommit(writes: TxWrites) {
      if (writes.versions.some((v) => v.resource.resourceType === 'ConceptMap')) invalidateMappings(db);
    },
  };
}
