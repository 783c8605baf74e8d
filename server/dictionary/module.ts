/**
 * The dictionary module (字典数据质控): each institution's local item dictionary and its map to the catalogue,
 * the review workflow and trace of every entry, the QC report — as FHIR operations and as the app's JSON API.
 */
import type { ModuleFactory } from '../module.ts';
import { dictionaryApi } from './api.ts';
import { mappingsObserver } from './mappings.ts';
import { dictionaryQcOperation } from './operations/dictionary-qc.ts';
import { entriesOperation } from './operations/entries.ts';
import { entryHistoryOperation } from './operations/entry-history.ts';
import { entryStatusOperation } from './operations/entry-status.ts';

export const dictionaryModule: ModuleFactory = ({ db, limits }) => {
  const api = dictionaryApi(db, limits);
  return {
    name: 'dictionary',
    operations: [entriesOperation, entryStatusOperation, entryHistoryOperation, dictionaryQcOperation],
    routes: [api.routes(), api.allowedMethods()],
    writeObservers: [mappingsObserver(db)],
  };
};
