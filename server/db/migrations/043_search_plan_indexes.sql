-- Search-index keys shaped for the two ways a search uses an index table (docs/fhir-api.md "How a search
-- runs"; test/search-plans.test.ts checks the plans):
--   a lookup  finds the owners of a value: it starts with what the search pins (for a reference, the target);
--   a probe   checks one candidate owner (type, id) for one parameter: it starts with the owner, then the
--             parameter, then the values the probe compares, so that it is read from the index alone.
-- The owner indexes (id, type) become probe indexes (id, type, param, …): still usable by every statement that
-- looks rows up by owner (the write path's DELETE of a replaced version's rows), with nothing added per row
-- beyond the wider keys.

-- reference: the lookup by target carries the owner's id (the rows of one patient without visiting the heap)
DROP INDEX idx_reference_lookup;
CREATE INDEX idx_reference_target ON idx_reference (target_id, param, type, target_type, id);
-- the url form (`subject=urn:oid:…`) only for references that are not `Type/id` (few rows); keyed by the url's
-- first 256 characters, as a whole url (up to 2,048 characters) could pass the B-tree's entry limit
CREATE INDEX idx_reference_url ON idx_reference (left(url, 256), param, type) WHERE target_id IS NULL;
DROP INDEX idx_reference_owner;
CREATE INDEX idx_reference_owner ON idx_reference (id, type, param, target_type, target_id);

DROP INDEX idx_token_owner;
CREATE INDEX idx_token_owner ON idx_token (id, type, param, code, system);

-- high first: `ge`/`gt` and `_sort=-date` read the upper bound
DROP INDEX idx_date_owner;
CREATE INDEX idx_date_owner ON idx_date (id, type, param, high, low);

DROP INDEX idx_quantity_owner;
CREATE INDEX idx_quantity_owner ON idx_quantity (id, type, param, value);

DROP INDEX idx_string_owner;
CREATE INDEX idx_string_owner ON idx_string (id, type, param);

DROP INDEX idx_uri_owner;
CREATE INDEX idx_uri_owner ON idx_uri (id, type, param);
