/**
 * The platform's conformance resources: the StructureDefinitions, SearchParameters, OperationDefinitions and
 * Measures of `profiles/`, published into the store at start (after the terminology, which their validation needs).
 */
import type { ModuleFactory } from '../module.ts';
import { publishProfiles } from './publish.ts';

export const profilesModule: ModuleFactory = ({ db, logger }) => ({
  name: 'profiles',
  async init() {
    const published = await publishProfiles(db);
    if (published.skipped.length > 0) logger.warn({ skipped: published.skipped }, 'conformance resources not published');
  },
});
