/**
 * The terminology module: the recognition catalogue and the platform's code systems, value sets and concept
 * maps (loaded into the store and into memory at start, refreshed when another server imports an edition), the
 * terminology operations, the catalogue import and the code upgrade.
 */
import type { ModuleFactory } from '../module.ts';
import { loadTerminology, watchTerminology } from './load.ts';
import { catalogueImportOperation } from './operations/catalogue-import.ts';
import { codeUpgradeOperation } from './operations/code-upgrade.ts';
import { expandOperation } from './operations/expand.ts';
import { lookupOperation } from './operations/lookup.ts';
import { subsumesOperation } from './operations/subsumes.ts';
import { translateOperation } from './operations/translate.ts';
import { validateCodeOperation } from './operations/validate-code.ts';
import { connectTerminologyToProfiles } from './profile-services.ts';

/** How often a server looks for a catalogue edition imported through another server or the command (ms). */
const REFRESH_MS = 10_000;

export const terminologyModule: ModuleFactory = ({ db, logger }) => {
  let stopWatch: (() => void) | undefined;
  return {
    name: 'terminology',
    operations: [lookupOperation, expandOperation, validateCodeOperation, translateOperation, subsumesOperation, catalogueImportOperation, codeUpgradeOperation],
    async init() {
      await loadTerminology(db);
      connectTerminologyToProfiles();
    },
    start() {
      // every process keeps its own in-memory copy fresh: a timer, not a once-per-tick job
      stopWatch = watchTerminology(db, REFRESH_MS, () => logger.warn('terminology refresh failed'));
    },
    async stop() {
      stopWatch?.();
    },
  };
};
