-- Closed binary log files shipped with the backups (point-in-time recovery): one row per file.
-- Durable so that shipping resumes after a restart without repeating or skipping a file, and so
-- that `soko backup list` and `soko status` can show the restorable window. A file belongs to
-- the server that wrote it (`server_id`: a restored or new install starts its numbering again).
-- Rebuilt from the `.json` beside each shipped file after a restore.
CREATE TABLE backup_binlogs (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    server_id      INT UNSIGNED NOT NULL,
    file_name      VARCHAR(255) NOT NULL,
    -- 'pruned': deleted with its base dump by the retention policy (the row stays as history).
    status         ENUM('ok', 'pruned') NOT NULL,
    -- The newest database set whose dump this file follows.
    base_set_id    VARCHAR(32) NULL,
    path           VARCHAR(1024) NOT NULL,
    bytes          BIGINT UNSIGNED NOT NULL,
    sha256         CHAR(64) NOT NULL,
    first_event_at DATETIME NULL,
    last_event_at  DATETIME NULL,
    first_gtid     VARCHAR(64) NULL,
    last_gtid      VARCHAR(64) NULL,
    transactions   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    copied_to      VARCHAR(1024) NULL,
    shipped_at     DATETIME(3) NOT NULL,
    UNIQUE KEY backup_binlogs_file (server_id, file_name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
