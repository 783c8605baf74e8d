/**
 * The exchange settings (docs/foshan-exchange.md): who this platform is to its partners and how long a check
 * waits for them.
 *
 *   HUREN_EXCHANGE_PLATFORM   this platform's code among partners (default `guangzhou`)
 *   HUREN_EXCHANGE_NAME       its name (default 广州市检验检查结果互认平台)
 *   HUREN_EXCHANGE_CITY       its city, an administrative division code (default 440100)
 *   HUREN_EXCHANGE_BUDGET_MS  how long a federated check waits for the partners (default 300, 10..10000)
 *   HUREN_EXCHANGE_KEY_FILE   its exchange keys (default <data dir>/exchange-keys.json, created on first start)
 */
export interface ExchangeConfig {
  platform: string;
  name: string;
  city: string;
  budgetMs: number;
  keyFile?: string;
}

export function loadExchangeConfig(env: NodeJS.ProcessEnv = process.env): ExchangeConfig {
  const platform = env.HUREN_EXCHANGE_PLATFORM || 'guangzhou';
  if (!/^[a-z][a-z0-9-]{1,31}$/.test(platform)) throw new Error('HUREN_EXCHANGE_PLATFORM must be 2-32 lower-case letters, digits or -');
  const city = env.HUREN_EXCHANGE_CITY || '440100';
  if (!/^\d{6}$/.test(city)) throw new Error('HUREN_EXCHANGE_CITY must be a 6-digit administrative division code');
  const budgetMs = env.HUREN_EXCHANGE_BUDGET_MS ? Number(env.HUREN_EXCHANGE_BUDGET_MS) : 300;
  if (!Number.isInteger(budgetMs) || budgetMs < 10 || budgetMs > 10_000) throw new Error('HUREN_EXCHANGE_BUDGET_MS must be a whole number of milliseconds, 10 to 10000');
  return { platform, name: env.HUREN_EXCHANGE_NAME || '广州市检验检查结果互认平台', city, budgetMs, ...(env.HUREN_EXCHANGE_KEY_FILE ? { keyFile: env.HUREN_EXCHANGE_KEY_FILE } : {}) };
}
