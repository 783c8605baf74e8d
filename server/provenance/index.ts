/**
 * Chain provenance (issue 5; docs/chain-provenance.md). For other modules:
 *
 *   enqueue(sql, kind, key, digest)      queue a record for platform anchoring, in your own transaction
 *   ProvenanceService.of(db)             the running service: anchorNow(), verifyNow(), sweep(), verify(), trace()
 *   statusesOf(sql, [{ id, version }])   the stored hash-consistency status of report versions
 *   chainStatistics(sql, range)          counts per institution and day (statistics.ts; MeasureReports, API)
 *   readBadgeSettings(sql)               the hash-consistent badge setting (badge.ts)
 */
export { ProvenanceService } from './service.ts';
export { enqueue, OutboxError, type AnchorRunResult, type OutboxCounts } from './outbox.ts';
export { statusesOf, type HashStatus, type AnchorStatus } from './records.ts';
export { loadProvenanceConfig, type ProvenanceConfig } from './config.ts';
export { RECOGNITION_RECORD_KIND, REPORT_KIND, recordDigest } from './intake.ts';
export { chainStatistics, generateChainStatistics, statisticsRange, type StatisticsRow } from './statistics.ts';
export { readBadgeSettings, writeBadgeSettings, HASH_STATUSES, type BadgeSettings } from './badge.ts';
export type { SweepResult } from './sweep.ts';
export type { VerifyResult } from './verify.ts';
export type { TraceResult } from './trace.ts';
