-- Chain provenance that holds against the platform itself (issue 15, docs/chain-provenance.md):
-- record seals (HMAC-SM3 under a key kept outside the database, server/provenance/record-keys.ts) on each
-- report version and anchor, the seal of the first time the chain was seen to hold an anchor, and the
-- institution's signature over a fingerprint (SM2, GB/T 32918) carried by a chain Provenance.
ALTER TABLE report_version ADD COLUMN seal text;
ALTER TABLE report_anchor ADD COLUMN seal text;
ALTER TABLE report_anchor ADD COLUMN found_seal text;
ALTER TABLE report_anchor ADD COLUMN signature jsonb;
