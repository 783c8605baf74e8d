/**
 * The chain Provenance of a report version (DESIGN.md §4) and the rule that recognises it.
 *
 * RULE (part of the fingerprint contract): a Bundle entry "carries chain information" — and is left out of
 * the fingerprint — when its `resource` is a Provenance (`resourceType` is exactly "Provenance") that has, at
 * its top level, an extension whose `url` is exactly {@link CHAIN_ANCHOR_URL}. Nothing else is looked at
 * (not the target, not meta.profile), so that every implementation decides the same way; every other entry,
 * including any other Provenance, is part of the fingerprint. That a chain Provenance targets the report's
 * DiagnosticReport is checked at intake, not by the fingerprint.
 *
 * The extension is complex; its parts (all `valueString` unless said otherwise):
 *   algorithm   valueCode   sm3 | sha256 (the hash of the fingerprint and of the Merkle tree)
 *   fingerprint             `<alg>:<hex>` — the report fingerprint
 *   ledger                  the ledger's name (e.g. `huren-embedded`, `gz-gov-chain`)
 *   transaction             the transaction id on that ledger (e.g. `0x…` for an EVM chain)
 *   height      valueUnsignedInt  the block number / height holding the transaction
 *   leafIndex   valueUnsignedInt  } optional Merkle inclusion proof (RFC 9162 §2.1.3):
 *   treeSize    valuePositiveInt  } leaf = H(0x00 ‖ fingerprint bytes), node = H(0x01 ‖ left ‖ right)
 *   path        (0..*, in order)  } audit path from the leaf upwards, each 64 hex digits
 *   root                          } `<alg>:<hex>` — the anchored root
 * Without a proof (or with treeSize 1 and no path) the fingerprint itself was anchored: root = fingerprint.
 */
import { CANONICAL_BASE } from '../terminology/canonical.ts';
import { DigestFormatError, isHashAlg, parseDigest, type HashAlg } from './hash.ts';

export const CHAIN_ANCHOR_URL = `${CANONICAL_BASE}/StructureDefinition/chain-anchor`;

/** True when `resource` is a chain Provenance by the rule above. */
export function isChainProvenance(resource: unknown): boolean {
  if (resource === null || typeof resource !== 'object') return false;
  const r = resource as { resourceType?: unknown; extension?: unknown };
  if (r.resourceType !== 'Provenance' || !Array.isArray(r.extension)) return false;
  for (const ext of r.extension) {
    if (ext !== null && typeof ext === 'object' && (ext as { url?: unknown }).url === CHAIN_ANCHOR_URL) return true;
  }
  return false;
}

/** True when a Bundle entry carries chain information (its resource is a chain Provenance). */
export function isChainEntry(entry: unknown): boolean {
  return entry !== null && typeof entry === 'object' && isChainProvenance((entry as { resource?: unknown }).resource);
}

export interface MerkleProof {
  leafIndex: number;
  treeSize: number;
  /** Audit path, leaf upwards, lowercase hex. */
  path: string[];
  /** `<alg>:<hex>`. */
  root: string;
}

export interface ChainAnchor {
  alg: HashAlg;
  /** `<alg>:<hex>`. */
  fingerprint: string;
  ledger: string;
  transaction: string;
  height: number;
  proof?: MerkleProof;
}

export class ChainAnchorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainAnchorError';
  }
}

interface Ext {
  url: string;
  [k: string]: unknown;
}

/** The extension for `anchor` (to put in Provenance.extension). */
export function chainAnchorExtension(anchor: ChainAnchor): Ext {
  checkAnchor(anchor);
  const parts: Ext[] = [
    { url: 'algorithm', valueCode: anchor.alg },
    { url: 'fingerprint', valueString: anchor.fingerprint },
    { url: 'ledger', valueString: anchor.ledger },
    { url: 'transaction', valueString: anchor.transaction },
    { url: 'height', valueUnsignedInt: anchor.height },
  ];
  if (anchor.proof) {
    parts.push({ url: 'leafIndex', valueUnsignedInt: anchor.proof.leafIndex });
    parts.push({ url: 'treeSize', valuePositiveInt: anchor.proof.treeSize });
    for (const p of anchor.proof.path) parts.push({ url: 'path', valueString: p });
    parts.push({ url: 'root', valueString: anchor.proof.root });
  }
  return { url: CHAIN_ANCHOR_URL, extension: parts };
}

export interface ChainProvenanceOptions {
  /** Reference to the report version, e.g. `urn:uuid:…` inside a Bundle or `DiagnosticReport/123/_history/1`. */
  target: string;
  anchor: ChainAnchor;
  /** Reference to whoever anchored (the institution or the platform), e.g. `Organization?identifier=…`. */
  agent: string;
  /** FHIR instant; defaults to now. */
  recorded?: string;
}

/** A complete chain Provenance resource. */
export function buildChainProvenance(opts: ChainProvenanceOptions): Record<string, unknown> {
  return {
    resourceType: 'Provenance',
    extension: [chainAnchorExtension(opts.anchor)],
    target: [{ reference: opts.target }],
    recorded: opts.recorded ?? new Date().toISOString(),
    agent: [{ who: { reference: opts.agent } }],
  };
}

/** Reads (and checks) the chain anchor of a chain Provenance. Throws ChainAnchorError naming what is wrong. */
export function readChainAnchor(provenance: unknown): ChainAnchor {
  if (!isChainProvenance(provenance)) throw new ChainAnchorError('not a chain Provenance (no chain-anchor extension)');
  const exts = (provenance as { extension: unknown[] }).extension.filter(
    (e) => (e as { url?: unknown }).url === CHAIN_ANCHOR_URL,
  ) as Array<{ extension?: unknown }>;
  if (exts.length !== 1) throw new ChainAnchorError('a chain Provenance has exactly one chain-anchor extension');
  const parts = Array.isArray(exts[0]!.extension) ? (exts[0]!.extension as Ext[]) : [];
  const all = (name: string) => parts.filter((p) => p && p.url === name);
  const one = (name: string, type: string, required: boolean): unknown => {
    const found = all(name);
    if (found.length > 1) throw new ChainAnchorError(`chain-anchor.${name} appears more than once`);
    if (found.length === 0) {
      if (required) throw new ChainAnchorError(`chain-anchor.${name} is missing`);
      return undefined;
    }
    const v = found[0]![type];
    if (v === undefined) throw new ChainAnchorError(`chain-anchor.${name} must be a ${type}`);
    return v;
  };
  const int = (name: string, required: boolean): number | undefined => {
    const found = all(name);
    if (found.length === 0 && !required) return undefined;
    const v = found.length === 1 ? (found[0]!.valueUnsignedInt ?? found[0]!.valuePositiveInt ?? found[0]!.valueInteger) : undefined;
    if (found.length > 1) throw new ChainAnchorError(`chain-anchor.${name} appears more than once`);
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new ChainAnchorError(`chain-anchor.${name} must be a non-negative integer`);
    return v as number;
  };
  const anchor: ChainAnchor = {
    alg: one('algorithm', 'valueCode', true) as HashAlg,
    fingerprint: one('fingerprint', 'valueString', true) as string,
    ledger: one('ledger', 'valueString', true) as string,
    transaction: one('transaction', 'valueString', true) as string,
    height: int('height', true)!,
  };
  const treeSize = int('treeSize', false);
  const leafIndex = int('leafIndex', false);
  const path = all('path').map((p, i) => {
    if (typeof p.valueString !== 'string') throw new ChainAnchorError(`chain-anchor.path[${i}] must be a valueString`);
    return p.valueString;
  });
  const root = one('root', 'valueString', false) as string | undefined;
  if (treeSize !== undefined || leafIndex !== undefined || path.length > 0 || root !== undefined) {
    if (treeSize === undefined) throw new ChainAnchorError('chain-anchor.treeSize is missing (the proof needs it)');
    if (root === undefined && treeSize !== 1) throw new ChainAnchorError('chain-anchor.root is missing (the proof needs it)');
    if (leafIndex === undefined && treeSize !== 1) throw new ChainAnchorError('chain-anchor.leafIndex is missing (the proof needs it)');
    anchor.proof = { leafIndex: leafIndex ?? 0, treeSize, path, root: root ?? anchor.fingerprint };
  }
  checkAnchor(anchor);
  return anchor;
}

function checkAnchor(a: ChainAnchor): void {
  if (!isHashAlg(a.alg)) throw new ChainAnchorError(`chain-anchor.algorithm '${String(a.alg)}' is not sm3 or sha256`);
  let fp;
  try {
    fp = parseDigest(a.fingerprint);
  } catch (e) {
    if (e instanceof DigestFormatError) throw new ChainAnchorError(`chain-anchor.fingerprint: ${e.message}`);
    throw e;
  }
  if (fp.alg !== a.alg) throw new ChainAnchorError(`chain-anchor.fingerprint is ${fp.alg} but algorithm says ${a.alg}`);
  if (typeof a.ledger !== 'string' || a.ledger === '') throw new ChainAnchorError('chain-anchor.ledger must be a non-empty string');
  if (typeof a.transaction !== 'string' || a.transaction === '') throw new ChainAnchorError('chain-anchor.transaction must be a non-empty string');
  if (!Number.isSafeInteger(a.height) || a.height < 0) throw new ChainAnchorError('chain-anchor.height must be a non-negative integer');
  const p = a.proof;
  if (!p) return;
  if (!Number.isSafeInteger(p.treeSize) || p.treeSize < 1) throw new ChainAnchorError('chain-anchor.treeSize must be a positive integer');
  if (!Number.isSafeInteger(p.leafIndex) || p.leafIndex < 0 || p.leafIndex >= p.treeSize) {
    throw new ChainAnchorError('chain-anchor.leafIndex must be less than treeSize');
  }
  p.path.forEach((h, i) => {
    if (!/^[0-9a-fA-F]{64}$/.test(h)) throw new ChainAnchorError(`chain-anchor.path[${i}] must be 64 hex digits`);
  });
  let root;
  try {
    root = parseDigest(p.root);
  } catch (e) {
    if (e instanceof DigestFormatError) throw new ChainAnchorError(`chain-anchor.root: ${e.message}`);
    throw e;
  }
  if (root.alg !== a.alg) throw new ChainAnchorError(`chain-anchor.root is ${root.alg} but algorithm says ${a.alg}`);
}
