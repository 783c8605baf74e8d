-- The partner platforms' exchange (server/exchange/, docs/foshan-exchange.md). The partners themselves are FHIR
-- Organization + Endpoint resources (ids partner-<code>); here what must not be readable through FHIR:
-- exchange_agreement holds, per partner, the key both platforms agreed for hashing national IDs (HMAC-SM3);
-- exchange_patient_hash maps those hashes to local patients (kept by a write observer on Patient writes, filled
-- for existing patients when a partner is registered).
CREATE TABLE exchange_agreement (
  partner     text        PRIMARY KEY,
  id_key      text        NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE exchange_patient_hash (
  partner     text NOT NULL,
  hash        text NOT NULL,
  patient_id  text NOT NULL,
  PRIMARY KEY (partner, hash, patient_id)
);
CREATE INDEX exchange_patient_hash_patient ON exchange_patient_hash (patient_id);
