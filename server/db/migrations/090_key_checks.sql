-- Key check values (server/key-check.ts): per key file purpose (`privacy`, `record`, `audit`) and key id, an
-- HMAC-SM3 of a fixed label under that key — never the key, nothing that helps to find it. Recorded the first
-- time a server sees a key id; at every start the keys in the file are compared with them, so a server whose
-- key files are not the ones this database's rows were sealed with refuses to start instead of failing on reads.
CREATE TABLE key_check (
  purpose      text        NOT NULL,
  kid          text        NOT NULL,
  check_value  text        NOT NULL,
  recorded_at  timestamptz NOT NULL,
  PRIMARY KEY (purpose, kid)
);
