/** Generated monitoring facts inserted directly (the tests' activity of many weeks, in one statement each). */
import type { Sql } from '../../server/db/database.ts';

const iso = (t: number) => new Date(t).toISOString();

/** Report versions `gen-<n>`: [institution, flow, received (ms), issued (ms)]. */
export async function insertReports(db: Sql, reports: [string, string, number, number][]): Promise<void> {
  await db.query(
    `INSERT INTO monitoring_report (report_id, version, institution, flow, received_at, issued_at)
     SELECT 'gen-' || n, 1, i, f, r, iss FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY AS g(i, f, r, iss, n)`,
    [reports.map((r) => r[0]), reports.map((r) => r[1]), reports.map((r) => iso(r[2])), reports.map((r) => iso(r[3]))]
  );
}
