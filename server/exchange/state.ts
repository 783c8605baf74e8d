/** What the exchange's routes and operation share: the database, the configuration, the keys, the registry. */
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { ExchangeKeyFile } from './keys.ts';
import type { PartnerRegistry } from './registry.ts';

export interface ExchangeState {
  db: Database;
  config: Config;
  /** The keys (loaded by the module's init). */
  keys(): ExchangeKeyFile;
  registry(): PartnerRegistry;
}
