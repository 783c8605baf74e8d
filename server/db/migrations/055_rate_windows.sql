-- Rate limits counted across server processes (server/http/rate-limit.ts): hits per key (e.g. a source
-- address on the sign-in API) and fixed window (its start, in whole seconds since the epoch). The limiter
-- weighs the previous window by how much of it still overlaps the last window-length (a sliding estimate),
-- and forgets windows older than two lengths.
CREATE TABLE rate_window (
  key          text    NOT NULL,
  window_start bigint  NOT NULL,
  hits         integer NOT NULL,
  PRIMARY KEY (key, window_start)
);
