/**
 * The partner registry (docs/foshan-exchange.md): each partner platform is a FHIR Organization
 * (`Organization/partner-<code>`: its name, its city, the requester cities the agreement covers) and an
 * Endpoint (`Endpoint/partner-<code>`: its FHIR base, its token endpoint and the client id this platform has
 * there, its credential key, its chain's identity and read nodes). Written only through the registry API
 * (the security administrator; server/exchange/api.ts): a FHIR write of either is refused by the write
 * observer here. The national-ID hashing key of the agreement is kept in `exchange_agreement`, not in FHIR.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHmac } from 'node:crypto';
import type { Endpoint, Extension, Organization, Patient } from '@medplum/fhirtypes';
import { openStored } from '../fhir/engine.ts';
import type { Database, Sql } from '../db/database.ts';
import { fail } from '../fhir/errors.ts';
import type { Repository, WriteObserver } from '../fhir/repository.ts';
import { ADMIN_DIVISION_SYSTEM } from '../profiles/canonical.ts';
import { SharedSetting } from '../db/shared-settings.ts';
import { platformId } from './keys.ts';
import type { IssuerKey } from './credential.ts';

export const PARTNER_SYSTEM = 'https://fhir.huren.gz.cn/partner-platform';
export const PARTNER_EXTENSION = 'https://fhir.huren.gz.cn/StructureDefinition/exchange-partner';
export const COVERAGE_EXTENSION = 'https://fhir.huren.gz.cn/StructureDefinition/exchange-coverage';
export const NATIONAL_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';
const PREFIX = 'partner-';

export interface Partner {
  code: string;
  name: string;
  /** The partner's city. */
  city: string;
  /** Requester cities whose checks ask this partner (the agreement's scope). */
  coverage: string[];
  /** The partner's FHIR base URL. */
  fhirBase: string;
  tokenUrl: string;
  /** This platform's client id at the partner. */
  clientId: string;
  /** The SMART client id the partner has here (its token's `client`). */
  partnerClientId: string;
  vcKey: IssuerKey;
  chain: { ledger: string; contract?: string; rpc: string[] };
  active: boolean;
}

/** The registry's own writes: the observer lets them through. */
const registryWrite = new AsyncLocalStorage<true>();

export function partnerIssuer(p: Partner): IssuerKey {
  return p.vcKey;
}

/** The national ID as the agreement hashes it: HMAC-SM3(agreed key, "huren-exchange-id" NUL system|value). */
export function idHash(idKey: string, value: string, system = NATIONAL_ID_SYSTEM): string {
  return createHmac('sm3', Buffer.from(idKey, 'hex')).update('huren-exchange-id\u0000').update(`${system}|${value.trim().toUpperCase()}`).digest('hex');
}

const ext = (url: string, value: Omit<Extension, 'url'>): Extension => ({ url, ...value });
const str = (url: string, v: string | undefined): Extension[] => (v ? [ext(url, { valueString: v })] : []);

function toResources(p: Partner): { organization: Organization; endpoint: Endpoint } {
  const id = `${PREFIX}${p.code}`;
  const organization: Organization = {
    resourceType: 'Organization',
    id,
    active: p.active,
    identifier: [{ system: PARTNER_SYSTEM, value: p.code }],
    type: [{ coding: [{ system: `${PARTNER_SYSTEM}/type`, code: 'partner-platform', display: '合作互认平台' }] }],
    name: p.name,
    address: [{ district: p.city }],
    extension: p.coverage.map((c) => ext(COVERAGE_EXTENSION, { valueCoding: { system: ADMIN_DIVISION_SYSTEM, code: c } })),
    endpoint: [{ reference: `Endpoint/${id}` }],
  };
  const endpoint: Endpoint = {
    resourceType: 'Endpoint',
    id,
    status: p.active ? 'active' : 'off',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' },
    name: `${p.name} FHIR`,
    managingOrganization: { reference: `Organization/${id}` },
    payloadType: [{ text: 'Huren exchange: $exchange-check' }],
    address: p.fhirBase,
    extension: [
      {
        url: PARTNER_EXTENSION,
        extension: [
          ...str('tokenUrl', p.tokenUrl),
          ...str('clientId', p.clientId),
          ...str('partnerClientId', p.partnerClientId),
          ...str('vcController', p.vcKey.controller),
          ...str('vcKey', p.vcKey.id),
          ...str('vcPublicKeyMultibase', p.vcKey.publicKeyMultibase),
          ...str('ledger', p.chain.ledger),
          ...str('contract', p.chain.contract),
          ...p.chain.rpc.flatMap((r) => str('rpc', r)),
        ],
      },
    ],
  };
  return { organization, endpoint };
}

function fromResources(org: Organization, ep: Endpoint): Partner {
  const parts = ep.extension?.find((e) => e.url === PARTNER_EXTENSION)?.extension ?? [];
  const get = (u: string) => parts.find((x) => x.url === u)?.valueString ?? '';
  const code = org.identifier?.find((i) => i.system === PARTNER_SYSTEM)?.value ?? (org.id ?? '').slice(PREFIX.length);
  return {
    code,
    name: org.name ?? code,
    city: org.address?.[0]?.district ?? '',
    coverage: (org.extension ?? []).filter((e) => e.url === COVERAGE_EXTENSION).map((e) => e.valueCoding?.code ?? '').filter(Boolean),
    fhirBase: ep.address,
    tokenUrl: get('tokenUrl'),
    clientId: get('clientId'),
    partnerClientId: get('partnerClientId'),
    vcKey: { controller: get('vcController') || platformId(code), id: get('vcKey'), publicKeyMultibase: get('vcPublicKeyMultibase') },
    chain: { ledger: get('ledger'), ...(get('contract') ? { contract: get('contract') } : {}), rpc: parts.filter((x) => x.url === 'rpc').map((x) => x.valueString ?? '').filter(Boolean) },
    active: org.active !== false && ep.status === 'active',
  };
}

/**
 * The partners as stored, cached in the process (every recognition check asks for them): only `put` changes
 * them (FHIR writes of the partner resources are refused, registryObserver), and it tells every process.
 */
const partners = new SharedSetting<readonly Partner[]>('exchange.partners', async (db) => {
  const rows = await db.query<{ type: string; id: string; content: Organization | Endpoint }>(
    "SELECT type, id, content FROM resource WHERE type IN ('Organization', 'Endpoint') AND id LIKE 'partner-%' AND NOT deleted ORDER BY id"
  );
  const eps = new Map(rows.filter((r) => r.type === 'Endpoint').map((r) => [r.id, r.content as Endpoint]));
  return Object.freeze(rows.filter((r) => r.type === 'Organization' && eps.has(r.id)).map((r) => Object.freeze(fromResources(r.content as Organization, eps.get(r.id)!))));
});

export class PartnerRegistry {
  constructor(
    private readonly db: Database,
    private readonly repo: Repository
  ) {}

  async list(): Promise<Partner[]> {
    return [...(await partners.get(this.db))];
  }

  async get(code: string): Promise<Partner | undefined> {
    return (await this.list()).find((p) => p.code === code);
  }

  /** The partner whose SMART client here is `clientId` (a platform calling $exchange-check). */
  async byClient(clientId: string): Promise<Partner | undefined> {
    return (await this.list()).find((p) => p.active && p.partnerClientId === clientId);
  }

  /** Creates or replaces a partner, its agreement key, and fills the national-ID hashes of existing patients. */
  async put(p: Partner, idKey: string): Promise<Partner> {
    const { organization, endpoint } = toResources(p);
    await registryWrite.run(true, async () => {
      await this.repo.update(endpoint);
      await this.repo.update(organization);
    });
    await partners.changed(this.db);
    await this.db.query(
      'INSERT INTO exchange_agreement (partner, id_key) VALUES ($1, $2) ON CONFLICT (partner) DO UPDATE SET id_key = EXCLUDED.id_key, updated_at = now()',
      [p.code, idKey]
    );
    await this.db.query('DELETE FROM exchange_patient_hash WHERE partner = $1', [p.code]);
    const patients = await this.db.query<{ id: string; content: Patient }>("SELECT id, content FROM resource WHERE type = 'Patient' AND NOT deleted");
    // stored Patients are sealed at rest (server/privacy/): their identifiers are read opened
    for (const row of patients) await storeHashes(this.db, [{ partner: p.code, idKey }], row.id, openStored(this.db, row.content));
    return (await this.get(p.code)) as Partner;
  }

  /** The local patients a partner's hashed national ID stands for. */
  async patientsByHash(partner: string, hash: string): Promise<string[]> {
    const rows = await this.db.query<{ patient_id: string }>('SELECT patient_id FROM exchange_patient_hash WHERE partner = $1 AND hash = $2 ORDER BY patient_id', [partner, hash]);
    return rows.map((r) => r.patient_id);
  }

  async idKey(partner: string): Promise<string | undefined> {
    return (await this.db.query<{ id_key: string }>('SELECT id_key FROM exchange_agreement WHERE partner = $1', [partner]))[0]?.id_key;
  }
}

async function storeHashes(sql: Sql, agreements: Array<{ partner: string; idKey: string }>, patientId: string, patient: Patient | undefined): Promise<void> {
  await sql.query('DELETE FROM exchange_patient_hash WHERE patient_id = $1 AND partner = ANY($2::text[])', [patientId, agreements.map((a) => a.partner)]);
  const ids = (patient?.identifier ?? []).filter((i) => i.system === NATIONAL_ID_SYSTEM && typeof i.value === 'string' && i.value.trim() !== '');
  for (const a of agreements) {
    for (const i of ids) {
      await sql.query('INSERT INTO exchange_patient_hash (partner, hash, patient_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [a.partner, idHash(a.idKey, i.value as string), patientId]);
    }
  }
}

const WATCHED_TYPES: ReadonlySet<string> = new Set(['Organization', 'Endpoint', 'Patient']);

/**
 * The registry's write observer: refuses FHIR writes of the partner resources (only the registry API writes
 * them), and keeps the national-ID hashes of every written Patient for every agreement.
 */
export const registryObserver: WriteObserver = {
  // nothing to refuse or to keep for other types
  onlyAlongside: (versions) => versions.every((v) => !WATCHED_TYPES.has(v.resource.resourceType)),
  async beforeCommit(sql, writes) {
    if (!registryWrite.getStore()) {
      const partner = writes.versions.find((v) => (v.resource.resourceType === 'Organization' || v.resource.resourceType === 'Endpoint') && (v.resource.id ?? '').startsWith(PREFIX));
      if (partner) throw fail(403, 'forbidden', `${partner.resource.resourceType}/${partner.resource.id} is a partner platform's registry entry: the security administrator changes it through /api/exchange/partners`, `${partner.resource.resourceType}.id`);
    }
    const patients = writes.versions.filter((v) => v.resource.resourceType === 'Patient');
    if (patients.length === 0) return;
    const agreements = (await sql.query<{ partner: string; id_key: string }>('SELECT partner, id_key FROM exchange_agreement')).map((r) => ({ partner: r.partner, idKey: r.id_key }));
    if (agreements.length === 0) return;
    for (const v of patients) await storeHashes(sql, agreements, v.resource.id as string, v.method === 'DELETE' ? undefined : (v.resource as Patient));
  },
};
