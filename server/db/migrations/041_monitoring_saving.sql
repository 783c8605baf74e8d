-- The estimated saving of recognised results (docs/monitoring.md "Saving"): for each decision, the catalogue
-- items it covers (the decision's report, or every implicated report when it names none), how many of them
-- carry a price in the catalogue, and the sum of those prices in 元 (CNY) — fixed when the decision is recorded,
-- so a later edition with other prices does not rewrite past savings.
ALTER TABLE monitoring_decision ADD COLUMN items integer;
ALTER TABLE monitoring_decision ADD COLUMN priced integer;
ALTER TABLE monitoring_decision ADD COLUMN saving numeric(14, 2);
