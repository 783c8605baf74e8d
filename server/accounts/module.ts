/**
 * The accounts module: the people who sign in (administrators of the health commission, institution
 * administrators, doctors, the system, security and audit administrators), with password + TOTP sign-in,
 * lockout, sessions with idle and absolute expiry, and roles under 三权分立 expressed as scopes
 * (server/accounts/roles.ts), so the engine's access policy governs a session like a hospital system's token;
 * and the security administrator's read-only view of the registered clients (clients.ts).
 */
import { Repository } from '../fhir/repository.ts';
import type { ModuleFactory } from '../module.ts';
import { accountsApi } from './api.ts';
import { registeredClients } from './clients.ts';
import { Accounts } from './service.ts';

export const accountsModule: ModuleFactory = ({ db, config, bootstrap, limits }) => {
  const repo = new Repository(db);
  const accounts = new Accounts(db, repo, config.accounts);
  return {
    name: 'accounts',
    routes: accountsApi(accounts, bootstrap, limits, () => registeredClients(repo, config.clients, config.cdsClients)),
    authenticators: [(token) => accounts.principal(token)],
    jobs: [{ name: 'accounts.prune-sessions', cron: '0 */5 * * * *', run: () => accounts.prune() }],
    async init() {
      // another process (or an earlier start) may have created the first security administrator with it
      if (bootstrap.source === 'generated' && bootstrap.active && (await accounts.hasSecurityAdmin())) bootstrap.disable();
    },
  };
};
