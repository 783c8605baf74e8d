import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../server/db/database.ts';
import { loadMigrations, migrate, splitStatements } from '../server/db/migrate.ts';
import { loadConfig } from '../server/config.ts';
import { startupMessage } from '../server/startup-message.ts';

const children = new Set<ChildProcess>();
test.after.always(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs `npm start`'s entry point as a real process and waits for its "listening" line. */
function startProcess(env: Record<string, string>): Promise<{ child: ChildProcess; base: string; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 180_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening: (http:\/\/\S+\/fhir)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1], output: () => out });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

test('npm start on a fresh data directory: token printed once, metadata answers, data survives a restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'huren-start-'));
  try {
    const first = await startProcess({ HUREN_DATA_DIR: dataDir, HUREN_BOOTSTRAP_TOKEN: '' });
    const token = readFileSync(join(dataDir, 'bootstrap-token'), 'utf8').trim();
    t.true(first.output().includes(token), 'the generated token is printed');
    t.true(first.output().includes(`saved in ${join(dataDir, 'bootstrap-token')}`));
    t.regex(first.output(), /listening: http:\/\/127\.0\.0\.1:\d+\/fhir/);
    t.true(first.output().includes('Only this machine can connect (HOST=127.0.0.1); set HOST=0.0.0.0'), first.output());
    t.is(statSync(join(dataDir, 'bootstrap-token')).mode & 0o777, 0o600);
    const meta = await fetch(`${first.base}/metadata`);
    t.is(meta.status, 200);
    const created = await fetch(`${first.base}/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: '持久' }] }),
    });
    t.is(created.status, 201);
    const { id } = await created.json();
    t.is(await stop(first.child), 0);

    // HOST unset: the default is this machine only, and the banner says so
    const second = await startProcess({ HUREN_DATA_DIR: dataDir, HUREN_BOOTSTRAP_TOKEN: '', HOST: '' });
    t.false(second.output().includes(token), 'the token is shown only when it is generated');
    t.true(second.output().includes(`The bootstrap token is in ${join(dataDir, 'bootstrap-token')}`), 'a restart says where the token is');
    t.true(second.output().includes('Only this machine can connect (HOST=127.0.0.1)'), second.output());
    const read = await fetch(`${second.base}/Patient/${id}`, { headers: { authorization: `Bearer ${token}` } });
    t.is(read.status, 200);
    t.is((await read.json()).name[0].family, '持久');
    t.is(await stop(second.child), 0);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the listen address defaults to 127.0.0.1; the banner tells the truth about HOST, the public URL and the token', (t) => {
  t.is(loadConfig({}).host, '127.0.0.1');
  t.is(loadConfig({ HOST: '' }).host, '127.0.0.1');
  t.is(loadConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0');
  const open = startupMessage({ url: 'http://127.0.0.1:8080', host: '0.0.0.0', engine: 'pglite', tokenFile: '/srv/huren/bootstrap-token' });
  t.regex(open, /Listening on every network interface \(HOST=0\.0\.0\.0\): other machines can connect/);
  t.false(open.includes('Only this machine'));
  t.regex(open, /The bootstrap token is in \/srv\/huren\/bootstrap-token/);
  t.regex(open, /\$\(cat \/srv\/huren\/bootstrap-token\)/);
  const behindProxy = startupMessage({ url: 'http://10.0.0.5:8080', host: '10.0.0.5', publicUrl: 'https://huren.example.org', engine: 'postgres' });
  t.regex(behindProxy, /listening: http:\/\/10\.0\.0\.5:8080\/fhir \(store: postgres\)/);
  t.regex(behindProxy, /Listening on 10\.0\.0\.5 only/);
  t.regex(behindProxy, /Public URL: https:\/\/huren\.example\.org\/fhir/);
  t.regex(behindProxy, /HUREN_BOOTSTRAP_TOKEN/);
  const generated = startupMessage({ url: 'http://127.0.0.1:8080', host: '127.0.0.1', engine: 'pglite', tokenFile: '/d/bootstrap-token', generatedToken: 'tok123' });
  t.regex(generated, /saved in \/d\/bootstrap-token \(shown once\):\n  tok123\n/);
});

test('migrations apply once, in order, and record themselves', async (t) => {
  const db = await openDatabase({});
  try {
    const all = loadMigrations();
    t.deepEqual(all.map((m) => m.version), [...all.map((m) => m.version)].sort((a, b) => a - b));
    const first = await migrate(db);
    t.deepEqual(first, all.map((m) => m.name));
    t.deepEqual(await migrate(db), [], 'a second run applies nothing');
    const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    t.deepEqual(rows.map((r) => Number(r.version)), all.map((m) => m.version));
  } finally {
    await db.close();
  }
});

test('the migration splitter keeps statements whole and drops comments', (t) => {
  t.deepEqual(splitStatements('-- c\nCREATE TABLE a (x int);\nCREATE INDEX i ON a (x);\n'), ['CREATE TABLE a (x int)', 'CREATE INDEX i ON a (x)']);
});
