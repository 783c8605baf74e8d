// The Digital Bazaar libraries ship no type declarations; these name what server/exchange/credential.ts uses.
declare module '@digitalbazaar/vc' {
  export function issue(options: { credential: unknown; suite: unknown; documentLoader: unknown }): Promise<any>;
  export function verifyCredential(options: { credential: unknown; suite: unknown; documentLoader: unknown; checkStatus?: unknown }): Promise<any>;
}
declare module '@digitalbazaar/data-integrity' {
  export class DataIntegrityProof {
    constructor(options: { signer?: unknown; cryptosuite: unknown; date?: Date | string });
  }
}
declare module '@digitalbazaar/eddsa-rdfc-2022-cryptosuite' {
  export const cryptosuite: unknown;
}
declare module '@digitalbazaar/ed25519-multikey' {
  export interface KeyPair {
    id: string;
    controller: string;
    publicKeyMultibase: string;
    secretKeyMultibase?: string;
    signer(): unknown;
    export(options: { publicKey?: boolean; secretKey?: boolean; includeContext?: boolean }): Promise<Record<string, string>>;
  }
  export function generate(options: { id?: string; controller?: string }): Promise<KeyPair>;
  export function from(key: Record<string, unknown>): Promise<KeyPair>;
}
