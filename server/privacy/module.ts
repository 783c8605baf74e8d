/**
 * Personal data at rest and in answers (docs/security.md 数据保密性, 个人信息保护): the storage codec that
 * keeps what identifies a patient sealed with SM4 and searchable through a blind index (codec.ts, keys.ts),
 * and the answer decorator that masks it for callers who do not need it in clear (mask.ts).
 *
 * Settings (environment): HUREN_PRIVACY_KEY_FILE (default <dataDir>/privacy-keys.json; every server process
 * of one database must share it). At start-up the keys are compared with the check values the database keeps
 * (server/key-check.ts): a database sealed under other keys refuses to start.
 */
import { checkKeyFile } from '../key-check.ts';
import type { ModuleFactory } from '../module.ts';
import { privacyCodec } from './codec.ts';
import { PrivacyKeys, privacyKeyFile } from './keys.ts';
import { maskAnswers } from './mask.ts';

export const privacyModule: ModuleFactory = ({ config, db }) => {
  const path = privacyKeyFile(config.dataDir);
  const keys = new PrivacyKeys(path);
  return {
    name: 'privacy',
    codec: privacyCodec(keys),
    responseDecorators: [maskAnswers],
    init: () => checkKeyFile(db, { purpose: 'privacy', path, envVar: 'HUREN_PRIVACY_KEY_FILE', checks: keys.checkValues() }),
  };
};
