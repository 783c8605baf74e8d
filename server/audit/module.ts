/**
 * The audit module (docs/security.md 安全审计): the request trail (every request → an AuditEvent, batched),
 * the audit chain (HMAC-SM3, key outside the database) appended by a write observer, `AuditEvent/$verify-chain`,
 * and the jobs: `audit.verify` (the chain check), `audit.anchor` (the chain head onto the ledger through the
 * provenance outbox), `audit.archive` (entries older than the retention period into audit_archive).
 *
 * Settings (environment): HUREN_AUDIT_KEY_FILE (default <dataDir>/audit-keys.json), HUREN_AUDIT_RETENTION_DAYS
 * (online retention, at least and by default 180), HUREN_AUDIT_FLUSH_MS (the batch interval, default 100).
 */
import type { ModuleFactory } from '../module.ts';
import { adoptUnchained, anchorHead, archiveChain, chainObserver, verifyChain } from './chain.ts';
import { checkKeyFile } from '../key-check.ts';
import { auditKeyChecks, auditKeyFile, loadAuditKeys } from './keys.ts';
import { verifyChainOperation } from './operations/verify-chain.ts';
import { AuditTrail } from './trail.ts';

export const MIN_RETENTION_DAYS = 180;

export interface AuditSettings {
  keyFile: string;
  retentionDays: number;
  flushMs: number;
}

export function auditSettings(dataDir: string, env: NodeJS.ProcessEnv = process.env): AuditSettings {
  const retentionDays = env.HUREN_AUDIT_RETENTION_DAYS ? Number(env.HUREN_AUDIT_RETENTION_DAYS) : MIN_RETENTION_DAYS;
  if (!Number.isInteger(retentionDays) || retentionDays < MIN_RETENTION_DAYS) {
    throw new Error(`HUREN_AUDIT_RETENTION_DAYS must be a whole number of days, at least ${MIN_RETENTION_DAYS}`);
  }
  const flushMs = env.HUREN_AUDIT_FLUSH_MS ? Number(env.HUREN_AUDIT_FLUSH_MS) : 100;
  if (!Number.isInteger(flushMs) || flushMs < 1 || flushMs > 10_000) throw new Error('HUREN_AUDIT_FLUSH_MS must be 1 to 10000');
  return { keyFile: auditKeyFile(dataDir, env), retentionDays, flushMs };
}

export const auditModule: ModuleFactory = ({ db, config, logger }) => {
  const settings = auditSettings(config.dataDir);
  const keys = loadAuditKeys(settings.keyFile);
  const trail = new AuditTrail(db, keys, logger, settings.flushMs);
  return {
    name: 'audit',
    operations: [verifyChainOperation(keys)],
    writeObservers: [chainObserver(keys)],
    edge: [trail.middleware()],
    jobs: [
      {
        name: 'audit.verify',
        cron: '0 23 * * * *',
        async run() {
          await trail.flush();
          const r = await verifyChain(db, keys);
          if (!r.ok) logger.error({ breaks: r.breaks.slice(0, 10), entries: r.entries }, 'audit chain broken');
        },
      },
      { name: 'audit.anchor', cron: '0 */5 * * * *', run: async () => void (await anchorHead(db)) },
      {
        name: 'audit.archive',
        cron: '0 41 3 * * *',
        async run(tick) {
          const moved = await archiveChain(db, new Date(tick.getTime() - settings.retentionDays * 86_400_000));
          if (moved > 0) logger.info({ moved }, 'audit entries archived');
        },
      },
    ],
    async init() {
      await checkKeyFile(db, { purpose: 'audit', path: settings.keyFile, envVar: 'HUREN_AUDIT_KEY_FILE', checks: auditKeyChecks(keys) });
      const adopted = await adoptUnchained(db, keys);
      if (adopted > 0) logger.info({ adopted }, 'earlier AuditEvents chained');
    },
    stop: () => trail.stop(),
  };
};
