-- One row per archive of a backup run (a "set" shares its set_id, which is also the name of
-- its directory). Durable so that `soko status`, the console and the scheduler know the last
-- good backup of each kind across restarts. A run that was interrupted (soko killed) stays
-- 'running' until the next run or the next start marks it 'failed'.
CREATE TABLE backups (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    set_id        VARCHAR(32) NOT NULL,
    kind          ENUM('database', 'vectors', 'images', 'secrets') NOT NULL,
    -- 'pruned': deleted by the retention policy (the row stays as history).
    status        ENUM('running', 'ok', 'failed', 'pruned') NOT NULL,
    -- 'schedule' or 'manual'.
    reason        VARCHAR(16) NOT NULL,
    path          VARCHAR(1024) NULL,
    bytes         BIGINT UNSIGNED NULL,
    sha256        CHAR(64) NULL,
    -- The database's migration version when the archive was made.
    schema_version BIGINT NULL,
    started_at    DATETIME(3) NOT NULL,
    finished_at   DATETIME(3) NULL,
    error         VARCHAR(2000) NULL,
    -- Where the copy landed (s3://bucket/key), when one was made.
    copied_to     VARCHAR(1024) NULL,
    KEY backups_kind (kind, status, started_at),
    KEY backups_set (set_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
