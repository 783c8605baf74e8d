/**
 * Server-assigned resource ids: UUID version 7 (RFC 9562), a 48-bit Unix millisecond timestamp, then a 12-bit
 * sequence and 62 random bits. Ids made later sort after ids made earlier (within one process: the sequence
 * keeps ids of the same millisecond in order; across processes, to the millisecond).
 *
 * Why not random (version 4) ids: every index that starts with the id — the primary keys of `resource` and
 * `resource_history`, the owner index of each search-index table, the target index for references to new
 * resources — then takes each new row at a random leaf page. On a table larger than the buffer cache that is a
 * page read, a dirtied page written back and (after each checkpoint) a full-page image in the WAL per index per
 * row; time-ordered ids put a transaction's rows on the few right-most pages instead. Measured on the report
 * transaction's write statement: about a third less PostgreSQL CPU (see issue 17's notes). An id reveals when
 * it was made, as `meta.lastUpdated` of its first version already does.
 */
import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let sequence = 0;
/** Random bytes drawn 4 KiB at a time (one system call per 256 ids rather than two per id). */
const pool = Buffer.alloc(4096);
let used = pool.length;

function random(n: number): Buffer {
  if (used + n > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += n;
  return pool.subarray(used - n, used);
}

/** A new UUIDv7, lowercase, in the 8-4-4-4-12 form. */
export function newResourceId(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    sequence = random(2).readUInt16BE(0) & 0x7ff; // start low in the 12 bits: room to count up
  } else if (++sequence > 0xfff) {
    lastMs++; // more than the sequence holds in one millisecond (or the clock went back): borrow the next one
    sequence = 0;
  }
  const b = Buffer.from(random(16)); // a copy: the pool is refilled in place
  b.writeUIntBE(lastMs, 0, 6);
  b[6] = 0x70 | (sequence >> 8);
  b[7] = sequence & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The creation time a UUIDv7 carries, in Unix milliseconds; undefined for anything else. */
export function idTimestamp(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
