-- 0003 images: a durable queue of background jobs (first user: the WebP variants of uploaded
-- product images).
--
-- A job is written in the same transaction as the change that needs it, and done later by a
-- worker that may crash at any point:
--   * a worker claims due jobs with SELECT ... FOR UPDATE SKIP LOCKED (MariaDB 10.6+, MySQL 8,
--     TiDB), marks them `running` and leases them until `locked_until`, then commits, so the
--     row lock is held only for the claim, never during the work;
--   * a worker that dies leaves its job `running` with a lease that runs out: the job is then
--     due again and another worker (or the same one, restarted) picks it up. Jobs are
--     idempotent, so doing one twice is harmless;
--   * `attempts` counts claims; it also fences a late worker (its update names the attempt it
--     claimed, and matches nothing once the job was claimed again);
--   * a failure puts the job back to `queued` with `next_attempt_at` pushed out (exponential
--     back-off), and to `failed` after the last attempt, keeping `last_error` for the operator.
--
-- A job is identified by what it does (`kind`, `payload`): asking for the same work again
-- re-arms the existing row rather than adding a second one.

CREATE TABLE jobs (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- What to do, e.g. 'image_variants'.
    kind            VARCHAR(32) NOT NULL,
    -- What to do it to, e.g. the SHA-256 of an image or a product id.
    payload         VARCHAR(255) NOT NULL,
    state           ENUM('queued', 'running', 'done', 'failed') NOT NULL DEFAULT 'queued',
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    -- While `running`: the end of the claiming worker's lease.
    locked_until    DATETIME(3) NULL,
    last_error      VARCHAR(1000) NULL,
    created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY jobs_work (kind, payload),
    -- The worker's question: which jobs of this kind are due?
    KEY jobs_due (kind, state, next_attempt_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
