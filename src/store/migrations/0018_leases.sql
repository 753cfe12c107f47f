-- 0018 leases: singleton work (backups, recommendations, event roll-up, catalogue re-check,
-- vector sync, alerts) runs on one node at a time when several `soko up` share the database.
--
-- One row per singleton, kept for ever. A node takes a lease that is free (expired) in one
-- transaction and bumps `token`, so every tenure has a larger token than the one before
-- (fencing): a job's writes that matter check, in their own transaction, that the lease is
-- still theirs (`holder`, `token`, not expired) under a shared lock, so a holder that was paused
-- past its expiry and taken over cannot write afterwards. All times are the database's clock
-- (UTC_TIMESTAMP(3)); nodes' clocks are never compared. Releasing sets `expires_at` to now.

CREATE TABLE leases (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,
    holder      VARCHAR(64) NOT NULL,
    token       BIGINT UNSIGNED NOT NULL,
    acquired_at DATETIME(3) NOT NULL,
    renewed_at  DATETIME(3) NOT NULL,
    expires_at  DATETIME(3) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A leased worker's heartbeat says which node wrote it under which token (NULL: a worker that
-- runs on every node, or an older soko).
ALTER TABLE worker_heartbeats
    ADD COLUMN node VARCHAR(64) NULL,
    ADD COLUMN lease_token BIGINT UNSIGNED NULL;
