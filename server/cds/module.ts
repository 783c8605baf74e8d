/**
 * The CDS Hooks module (CDS Hooks 2.0 under `/cds-services`): the recognition reminder at `patient-view`, the
 * duplicate check at `order-select`/`order-sign`, and the feedback endpoint that records the doctor's decision.
 */
import { Repository } from '../fhir/repository.ts';
import type { ModuleFactory } from '../module.ts';
import { cdsHooks } from './router.ts';

export const cdsModule: ModuleFactory = ({ db, config, limits }) => ({
  name: 'cds',
  routes: [cdsHooks({ repo: new Repository(db), limits, publicUrl: config.publicUrl })],
});
