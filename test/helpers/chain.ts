/**
 * Chain-provenance test helpers: real ganache nodes on loopback (optionally persisted, so a node can be
 * stopped and started again on the same chain), the anchor contract, an institution that anchors its own
 * reports, and report Bundles full of personal data (to prove none of it reaches the chain).
 */
import { randomUUID } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import ganache from 'ganache';
import { HDNodeWallet, Mnemonic, keccak256, toUtf8Bytes } from 'ethers';
import { buildChainProvenance, fingerprint, type ChainAnchor, type HashAlg } from '../../server/fingerprint/index.ts';
import { deployAnchorContract, EvmLedger, HttpRpcNode, type AnchorReceipt, type LedgerConfig } from '../../server/ledger/index.ts';
import { loadProvenanceConfig, type ProvenanceConfig } from '../../server/provenance/config.ts';

export const MNEMONIC = 'test test test test test test test test test test test junk';
export const CHAIN_ID = 31337;
export const LEDGER_NAME = 'gz-test-chain';
export const account = (i: number) => HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(MNEMONIC), `m/44'/60'/0'/0/${i}`);
export const platform = account(0);
export const institution = account(1);

type GanacheServer = ReturnType<typeof ganache.server>;

/**
 * A ganache node on loopback. `stop()` really stops it; `start()` again opens the same chain when it has a
 * dbPath. Its URL stays the same across restarts: a small TCP relay (like the load balancer in front of a
 * real node) forwards to wherever the node listens now — ganache cannot listen on its old port again at once.
 */
export class Node {
  server?: GanacheServer;
  private relay?: Server;
  private relayPort = 0;
  private upstream = 0;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly name: string,
    private readonly options: Record<string, unknown>
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.relayPort}`;
  }

  async start(): Promise<void> {
    const server = ganache.server({ logging: { quiet: true }, chain: { chainId: CHAIN_ID }, wallet: { mnemonic: MNEMONIC, totalAccounts: 3 }, ...this.options } as never);
    await server.listen(0, '127.0.0.1');
    this.upstream = server.address().port;
    this.server = server;
    if (!this.relay) {
      const relay = createServer((client) => {
        if (!this.server) return void client.destroy();
        const up = connect(this.upstream, '127.0.0.1');
        for (const sock of [client, up]) {
          this.sockets.add(sock);
          sock.on('close', () => this.sockets.delete(sock));
          sock.on('error', () => undefined);
        }
        client.pipe(up);
        up.pipe(client);
        client.on('close', () => up.destroy());
        up.on('close', () => client.destroy());
      });
      await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()));
      this.relayPort = (relay.address() as AddressInfo).port;
      this.relay = relay;
    }
  }

  /** Stops the node (connections through the relay are cut; new ones are refused until it starts again). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    await s?.close().catch(() => undefined);
  }

  /** Stops the node and its relay. */
  async close(): Promise<void> {
    await this.stop();
    const relay = this.relay;
    this.relay = undefined;
    if (relay) await new Promise<void>((resolve) => relay.close(() => resolve()));
  }
}

/** The server's ledger configuration for these nodes (the platform's key signs). */
export function ledgerConfig(nodes: Node[], contract: string, dataDir = '/nonexistent'): LedgerConfig {
  return {
    kind: 'evm',
    name: LEDGER_NAME,
    dataDir,
    evm: {
      nodes: nodes.map((n) => ({ name: n.name, url: n.url })),
      contract,
      privateKey: platform.privateKey,
      chainId: CHAIN_ID,
      timeoutMs: 2000,
      receiptTimeoutMs: 20_000,
    },
  };
}

/** Provenance settings for tests: no schedules (the test triggers runs), platform anchoring without delay. */
export function testProvenanceConfig(overrides: Partial<ProvenanceConfig> = {}): ProvenanceConfig {
  return { ...loadProvenanceConfig({}), anchorCron: undefined, sweepCron: undefined, deepSweepCron: undefined, platformAnchorDelaySeconds: 0, retrySeconds: 1, retryMaxSeconds: 2, ...overrides };
}

/** Deploys the anchor contract (platform account) and registers the institution's account. */
export async function deployContract(node: Node): Promise<string> {
  const rpc = new HttpRpcNode(node.name, node.url, 5000);
  const { address } = await deployAnchorContract(rpc, platform.privateKey, { chainId: CHAIN_ID, pollIntervalMs: 20 });
  const admin = new EvmLedger({ name: LEDGER_NAME, nodes: [rpc], contract: address, privateKey: platform.privateKey, chainId: CHAIN_ID, pollIntervalMs: 20 });
  await admin.registerInstitution(institution.address, keccak256(toUtf8Bytes('urn:huren:org|gy1')));
  return address;
}

/** The institution's own ledger client (its key, the same contract). */
export function institutionLedger(node: Node, contract: string): EvmLedger {
  return new EvmLedger({ name: LEDGER_NAME, nodes: [new HttpRpcNode(node.name, node.url, 5000)], contract, privateKey: institution.privateKey, chainId: CHAIN_ID, pollIntervalMs: 20 });
}

/** Personal data used in the Bundles: none of it may reach the chain. */
export const PERSON = {
  name: '张三丰',
  nationalId: '440101198001010011',
  mrn: 'MRN-7731-0042',
  phone: '13800138000',
  address: '广州市越秀区中山一路1号',
};

export interface ReportBundle {
  bundle: Record<string, any>;
  reportUrl: string;
  key: string;
}

/** A lab report Bundle (patient with personal data, institution, report, two results), unique per key. */
export function reportBundle(key: string, values: [number, number] = [5.6, 140]): ReportBundle {
  const reportUrl = `urn:uuid:${randomUUID()}`;
  const obsUrls = [`urn:uuid:${randomUUID()}`, `urn:uuid:${randomUUID()}`];
  const patient = `urn:uuid:${randomUUID()}`;
  const org = `urn:uuid:${randomUUID()}`;
  const codes = [
    { code: '2823-3', text: '钾', unit: 'mmol/L' },
    { code: '2951-2', text: '钠', unit: 'mmol/L' },
  ];
  return {
    key,
    reportUrl,
    bundle: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: patient,
          resource: {
            resourceType: 'Patient',
            identifier: [
              { system: 'urn:oid:2.16.156.10011.1.3', value: PERSON.nationalId },
              { system: 'https://his.gy1.example/mrn', value: PERSON.mrn },
            ],
            name: [{ text: PERSON.name }],
            telecom: [{ system: 'phone', value: PERSON.phone }],
            address: [{ text: PERSON.address }],
          },
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:oid:2.16.156.10011.1.3|${PERSON.nationalId}` },
        },
        {
          fullUrl: org,
          resource: { resourceType: 'Organization', identifier: [{ system: 'urn:huren:org', value: 'gy1' }], name: '广州医科大学附属第一医院' },
          request: { method: 'POST', url: 'Organization', ifNoneExist: 'identifier=urn:huren:org|gy1' },
        },
        {
          fullUrl: reportUrl,
          resource: {
            resourceType: 'DiagnosticReport',
            identifier: [{ system: 'https://his.gy1.example/report-id', value: `LAB-${key}` }],
            status: 'final',
            category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
            code: { coding: [{ system: 'http://loinc.org', code: '24326-1' }], text: '电解质' },
            subject: { reference: patient, display: PERSON.name },
            performer: [{ reference: org }],
            issued: '2024-06-15T10:00:00+08:00',
            conclusion: `${PERSON.name}：血钾偏高`,
            result: obsUrls.map((reference) => ({ reference })),
          },
          request: { method: 'POST', url: 'DiagnosticReport', ifNoneExist: `identifier=https://his.gy1.example/report-id|LAB-${key}` },
        },
        ...codes.map((c, i) => ({
          fullUrl: obsUrls[i],
          resource: {
            resourceType: 'Observation',
            identifier: [{ system: 'https://his.gy1.example/result-id', value: `LAB-${key}-${c.code}` }],
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: c.code }], text: c.text },
            subject: { reference: patient },
            effectiveDateTime: '2024-06-15T08:00:00+08:00',
            valueQuantity: { value: values[i], unit: c.unit, system: 'http://unitsofmeasure.org', code: c.unit },
          },
          request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=https://his.gy1.example/result-id|LAB-${key}-${c.code}` },
        })),
      ],
    },
  };
}

/** The anchor of a receipt's i-th record, as an institution writes it into its chain Provenance. */
export function anchorOf(receipt: AnchorReceipt, i: number, fp: string, alg: HashAlg = 'sm3'): ChainAnchor {
  const proof = receipt.proofs[i]!;
  return { alg, fingerprint: fp, ledger: receipt.ledger, transaction: receipt.txId, height: receipt.height, ...(proof.path.length > 0 ? { proof } : {}) };
}

/** Adds the chain Provenance entry (target: the report's fullUrl) to a Bundle. */
export function withProvenance(r: ReportBundle, anchor: ChainAnchor): Record<string, any> {
  return {
    ...r.bundle,
    entry: [
      ...r.bundle.entry,
      {
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource: buildChainProvenance({ target: r.reportUrl, anchor, agent: r.bundle.entry[1].fullUrl, recorded: '2024-06-15T10:01:00+08:00' }),
        request: { method: 'POST', url: 'Provenance' },
      },
    ],
  };
}

export { fingerprint };
