-- Sellers' catalogues imported from their own web pages ("Scout & Hydrate"), and the
-- heartbeat re-check of every imported product against its source page. All of it is durable
-- state the workers claim from (workers/catalogue_import.rs, workers/catalogue_recheck.rs), so
-- a restart resumes an import or a round where it stopped.

-- One import a seller asked for (the page /sell/import, the API, `soko catalogue import`).
CREATE TABLE catalogue_imports (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seller_id    BIGINT UNSIGNED NOT NULL,
    -- 'running' while any of its URLs is queued, then 'done'.
    state        VARCHAR(16) NOT NULL DEFAULT 'running',
    -- 'page', 'api' or 'cli'.
    requested_by VARCHAR(16) NOT NULL,
    urls_given   INT UNSIGNED NOT NULL,
    created_at   DATETIME(3) NOT NULL,
    finished_at  DATETIME(3) NULL,
    KEY catalogue_imports_seller (seller_id, id),
    KEY catalogue_imports_state (state, id),
    CONSTRAINT catalogue_imports_seller_fk FOREIGN KEY (seller_id) REFERENCES sellers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every URL of an import: the ones given, and those found in sitemaps and on shop pages. A
-- worker claims queued rows for a lease; each ends 'done' (with its outcome) or 'failed'.
CREATE TABLE catalogue_import_urls (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    import_id       BIGINT UNSIGNED NOT NULL,
    url             VARCHAR(2048) NOT NULL,
    -- SHA-256 of the URL: one row per URL and import.
    url_hash        BINARY(32) NOT NULL,
    -- Links followed to reach it (0: given by the seller).
    depth           TINYINT UNSIGNED NOT NULL,
    -- 'queued', 'done' or 'failed'.
    state           VARCHAR(16) NOT NULL DEFAULT 'queued',
    -- created, updated, unchanged, no_product, sitemap, gone, robots, refused, over_quota, error.
    outcome         VARCHAR(32) NOT NULL DEFAULT '',
    detail          VARCHAR(500) NOT NULL DEFAULT '',
    product_id      BIGINT UNSIGNED NULL,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL,
    locked_until    DATETIME(3) NULL,
    UNIQUE KEY catalogue_import_urls_once (import_id, url_hash),
    KEY catalogue_import_urls_due (state, next_attempt_at),
    CONSTRAINT catalogue_import_urls_import_fk FOREIGN KEY (import_id) REFERENCES catalogue_imports (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A product that came from a seller's page: where from, the page's validators and what soko
-- read from it, and how the heartbeat re-check last found it. Re-importing the same URL for
-- the same seller updates this row and its product, never a second one.
CREATE TABLE imported_products (
    product_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    seller_id      BIGINT UNSIGNED NOT NULL,
    source_url     VARCHAR(2048) NOT NULL,
    url_hash       BINARY(32) NOT NULL,
    etag           VARCHAR(500) NULL,
    last_modified  VARCHAR(100) NULL,
    -- SHA-256 of the fields read (name, description, price, photos).
    content_hash   BINARY(32) NOT NULL,
    -- 'json-ld', 'opengraph' or 'text'.
    extracted_from VARCHAR(16) NOT NULL,
    -- Taken down by the re-check ('source gone', 'source unreachable'): the product is
    -- hidden, kept for the record and the seller's view; empty while it is up.
    down_reason    VARCHAR(64) NOT NULL DEFAULT '',
    down_since     DATETIME(3) NULL,
    -- Rounds in a row the source could not be reached.
    failed_rounds  INT UNSIGNED NOT NULL DEFAULT 0,
    -- The last re-check round that checked it (0: none yet), and a claim's lease.
    checked_run    BIGINT UNSIGNED NOT NULL DEFAULT 0,
    claimed_until  DATETIME(3) NULL,
    last_checked_at DATETIME(3) NULL,
    imported_at    DATETIME(3) NOT NULL,
    UNIQUE KEY imported_products_source (seller_id, url_hash),
    KEY imported_products_run (checked_run),
    CONSTRAINT imported_products_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The sync log: one row per heartbeat re-check round, with its counts.
CREATE TABLE catalogue_recheck_runs (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- 'running', 'completed' or 'failed'.
    state       VARCHAR(16) NOT NULL DEFAULT 'running',
    -- 'schedule' or 'manual' (`soko catalogue recheck`).
    reason      VARCHAR(16) NOT NULL,
    started_at  DATETIME(3) NOT NULL,
    finished_at DATETIME(3) NULL,
    checked     INT UNSIGNED NOT NULL DEFAULT 0,
    unchanged   INT UNSIGNED NOT NULL DEFAULT 0,
    updated     INT UNSIGNED NOT NULL DEFAULT 0,
    gone        INT UNSIGNED NOT NULL DEFAULT 0,
    restored    INT UNSIGNED NOT NULL DEFAULT 0,
    errors      INT UNSIGNED NOT NULL DEFAULT 0,
    taken_down  INT UNSIGNED NOT NULL DEFAULT 0,
    detail      VARCHAR(500) NOT NULL DEFAULT '',
    KEY catalogue_recheck_runs_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
