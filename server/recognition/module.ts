/**
 * The recognition module: the HIS-facing checks ($recognition-check, $duplicate-check), the doctor's decision
 * ($decide), report viewing ($reports, $view, $everything, $summary), and the recognition report profile's catalogue rule.
 */
import type { ModuleFactory } from '../module.ts';
import { decideOperation } from './operations/decide.ts';
import { duplicateCheckOperation } from './operations/duplicate-check.ts';
import { everythingOperation } from './operations/everything.ts';
import { summaryOperation } from './operations/summary.ts';
import { recognitionCheckOperation } from './operations/recognition-check.ts';
import { reportsOperation } from './operations/reports.ts';
import { viewOperation } from './operations/view.ts';
import { connectCatalogueRule } from './profile-rules.ts';

export const recognitionModule: ModuleFactory = () => ({
  name: 'recognition',
  operations: [recognitionCheckOperation, duplicateCheckOperation, decideOperation, reportsOperation, viewOperation, everythingOperation, summaryOperation],
  async init() {
    connectCatalogueRule();
  },
});
