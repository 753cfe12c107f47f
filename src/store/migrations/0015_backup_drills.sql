-- One row per restore drill (`soko backup verify`, by hand or on `backup.verify_every_days`):
-- a backup set loaded into a scratch database and compared table by table with its manifest.
-- Durable so that the schedule survives a restart (neither repeated nor forgotten) and
-- `soko status` shows the last result.
CREATE TABLE backup_drills (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    set_id      VARCHAR(32) NOT NULL,
    -- 'schedule' or 'manual'.
    reason      VARCHAR(16) NOT NULL,
    ok          BOOLEAN NOT NULL,
    -- Tables compared, and those that differed.
    tables      INT UNSIGNED NOT NULL,
    mismatched  INT UNSIGNED NOT NULL,
    -- Why it failed (the first differences), or a summary.
    detail      VARCHAR(2000) NOT NULL,
    started_at  DATETIME(3) NOT NULL,
    finished_at DATETIME(3) NOT NULL,
    KEY backup_drills_started (started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
