-- Progress of a running asynchronous request (the X-Progress header of a poll), reported by long
-- operations such as the catalogue import and the code upgrade; each report also renews the job's lease.
ALTER TABLE async_job ADD COLUMN progress text;
