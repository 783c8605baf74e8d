-- Hospital signatures checked on intake (issue 15, docs/chain-provenance.md "Hospital signatures"): the SM2
-- signature that verified for the performing institution's registered key when the version was submitted,
-- sealed with the record key (HMAC-SM3), so that $verify need not redo the SM2 check (~30 ms of CPU) unless it
-- is asked to (`reverify=true`) or something it relied on changed.
ALTER TABLE report_version ADD COLUMN signature_check jsonb;
