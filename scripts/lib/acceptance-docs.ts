/**
 * The acceptance documents that can be generated from the code (docs/operations/acceptance.md), so that they
 * cannot drift from it: the database design (the schema the migrations build, read back from the database's
 * own catalogue), the API reference (the CapabilityStatement a running server publishes and the
 * OperationDefinitions in profiles/) and the test plan (every test file's purpose and its tests' names).
 * `npm run docs:acceptance` writes them under docs/operations/generated/; test/acceptance-docs.test.ts fails
 * when the committed database design or API reference is not what the code generates. The test plan changes
 * with nearly every commit: it is generated when the document set is handed over (`--with-test-plan`), not kept.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../../server/db/database.ts';
import { loadMigrations, migrate } from '../../server/db/migrate.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const GENERATED_DIR = join(ROOT, 'docs', 'operations', 'generated');
const HEADER = (title: string, source: string) => `# ${title}\n\n> 由 \`npm run docs:acceptance\` 从${source}生成，请勿手工修改。\n\n`;

export async function databaseDesign(): Promise<string> {
  const db = await openDatabase({});
  try {
    await migrate(db);
    const created = new Map<string, { migration: string; comment: string }>();
    for (const m of loadMigrations()) {
      const text = readFileSync(join(ROOT, 'server', 'db', 'migrations', `${m.name}.sql`), 'utf8');
      for (const match of text.matchAll(/((?:^--[^\n]*\n)*)CREATE TABLE (?:IF NOT EXISTS )?(\w+)/gm)) {
        const comment = match[1].split('\n').map((l) => l.replace(/^--\s?/, '').trim()).filter(Boolean).join(' ');
        created.set(match[2], { migration: m.name, comment });
      }
    }
    const columns = await db.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
      `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
        WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
    );
    const indexes = await db.query<{ tablename: string; indexdef: string }>(`SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY tablename, indexname`);
    const tables = [...new Set(columns.map((c) => c.table_name))].sort();
    let out = HEADER('数据库设计说明书', ' server/db/migrations/ 建成的数据库（其系统目录）');
    out += `共 ${tables.length} 张表，由 ${loadMigrations().length} 个迁移按编号顺序建成。\n\n`;
    for (const t of tables) {
      const origin = created.get(t);
      out += `## ${t}\n\n`;
      if (origin) out += `${origin.comment ? `${origin.comment}\n\n` : ''}建于 \`${origin.migration}.sql\`。\n\n`;
      out += '| 列 | 类型 | 可空 | 默认值 |\n|---|---|---|---|\n';
      for (const c of columns.filter((c) => c.table_name === t)) {
        out += `| ${c.column_name} | ${c.data_type} | ${c.is_nullable === 'YES' ? '是' : '否'} | ${c.column_default ? `\`${c.column_default.replace(/\|/g, '\\|')}\`` : ''} |\n`;
      }
      const own = indexes.filter((i) => i.tablename === t);
      if (own.length) out += `\n索引：\n\n${own.map((i) => `- \`${i.indexdef.replace(/ ON \w+\.?/, ' ON ')}\``).join('\n')}\n`;
      out += '\n';
    }
    return out;
  } finally {
    await db.close();
  }
}

interface OperationDefinitionJson {
  code: string;
  name?: string;
  title?: string;
  description?: string;
  resource?: string[];
  system?: boolean;
  type?: boolean;
  instance?: boolean;
  affectsState?: boolean;
  parameter?: { name: string; use: string; min: number; max: string; type?: string; documentation?: string }[];
}

export async function apiReference(): Promise<string> {
  const { start } = await import('../../server/app.ts');
  const { loadConfig } = await import('../../server/config.ts');
  const token = randomBytes(16).toString('hex');
  const huren = await start(loadConfig({ HUREN_EMBEDDED_RPC: 'off' }, { port: 0, host: '127.0.0.1', inMemory: true, bootstrapToken: token, logLevel: 'error', dataDir: join(ROOT, '.acceptance-docs-tmp') }));
  let capability: {
    rest: { resource?: { type: string; interaction?: { code: string }[]; searchParam?: { name: string; type: string }[]; operation?: { name: string }[] }[]; operation?: { name: string }[] }[];
  };
  try {
    capability = (await (await fetch(`${huren.url}/fhir/metadata`)).json()) as typeof capability;
  } finally {
    await huren.close();
    const { rmSync } = await import('node:fs');
    rmSync(join(ROOT, '.acceptance-docs-tmp'), { recursive: true, force: true });
  }
  const rest = capability.rest[0];
  let out = HEADER('接口说明书', ' `GET /fhir/metadata`（CapabilityStatement）与 profiles/ 中的 OperationDefinition ');
  out += '完整的交互规则、分页、错误与限额见 [FHIR API](../../fhir-api.md)。\n\n## 资源与交互\n\n| 资源 | 交互 | 检索参数 | 操作 |\n|---|---|---|---|\n';
  for (const r of [...(rest.resource ?? [])].sort((a, b) => a.type.localeCompare(b.type))) {
    const interactions = (r.interaction ?? []).map((i) => i.code).sort().join(', ');
    const params = (r.searchParam ?? []).map((p) => p.name).sort().join(', ');
    const ops = (r.operation ?? []).map((o) => `$${o.name}`).sort().join(', ');
    out += `| ${r.type} | ${interactions} | ${params} | ${ops} |\n`;
  }
  const system = (rest.operation ?? []).map((o) => `$${o.name}`).sort();
  if (system.length) out += `\n系统级操作：${system.join(', ')}\n`;
  out += '\n## 操作定义\n\n';
  const files = readdirSync(join(ROOT, 'profiles')).filter((f) => f.startsWith('OperationDefinition-') && f.endsWith('.json')).sort();
  for (const f of files) {
    const def = JSON.parse(readFileSync(join(ROOT, 'profiles', f), 'utf8')) as OperationDefinitionJson;
    const levels = [def.system && '系统', def.type && '类型', def.instance && '实例'].filter(Boolean).join('、');
    out += `### $${def.code}${def.resource?.length ? `（${def.resource.join(', ')}）` : ''}\n\n`;
    out += `${(def.description ?? def.title ?? '').trim()}\n\n级别：${levels || '—'}；${def.affectsState ? '会改变状态（POST）' : '不改变状态'}。定义文件：\`profiles/${f}\`。\n\n`;
    if (def.parameter?.length) {
      out += '| 参数 | 方向 | 基数 | 类型 | 说明 |\n|---|---|---|---|---|\n';
      for (const p of def.parameter) out += `| ${p.name} | ${p.use === 'in' ? '入' : '出'} | ${p.min}..${p.max} | ${p.type ?? ''} | ${(p.documentation ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')} |\n`;
      out += '\n';
    }
  }
  return out;
}

export function testPlan(): string {
  const dir = join(ROOT, 'test');
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort();
  let out = HEADER('测试计划', ' test/*.test.ts（每个文件开头的说明与其中的测试名）');
  let total = 0;
  const sections: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const purpose = /^\/\*\*([\s\S]*?)\*\//.exec(text)?.[1].split('\n').map((l) => l.replace(/^\s*\*\s?/, '').trim()).filter(Boolean).join(' ') ?? '';
    const names = [...text.matchAll(/\btest(?:\.serial)?\(\s*(['"`])((?:\\.|(?!\1).)*)\1/g)].map((m) => m[2].replace(/\\(.)/g, '$1'));
    total += names.length;
    sections.push(`## ${f}\n\n${purpose ? `${purpose}\n\n` : ''}${names.map((n) => `- ${n}`).join('\n')}\n`);
  }
  out += `${files.length} 个测试文件，${total} 个静态命名的测试（由数据生成的测试另计），每次提交在 PGlite 与 PostgreSQL 上各运行一遍（\`.ci/run\`）；CI 的输出即测试报告。\n\n`;
  return out + sections.join('\n');
}

/** The documents kept in the repository (checked by the test): the schema and the API change with the code that makes them. */
export async function committedDocs(): Promise<Record<string, string>> {
  return { 'database-design.md': await databaseDesign(), 'api-reference.md': await apiReference() };
}
