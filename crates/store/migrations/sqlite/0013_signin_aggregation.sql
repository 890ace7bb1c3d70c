-- Non-interactive sign-ins aggregated per minute (see mlgate_core::signins): a record counts
-- identical attempts (`attempts`, from `at` to `last_at`) under its aggregation key; the
-- unique index is what later batches of the same minute add their counts into. Interactive
-- sign-ins have no key (NULLs never conflict).
ALTER TABLE sign_ins ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sign_ins ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sign_ins ADD COLUMN agg_key TEXT;
UPDATE sign_ins SET last_at = at;
CREATE UNIQUE INDEX sign_ins_agg_key ON sign_ins (agg_key);
