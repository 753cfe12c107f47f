-- 0017 quality control: each listing's automatic check (its durable queue and its decision),
-- each photo's measured facts, and the notifications sellers read on their dashboard.
--
-- `listing_checks` is both the queue and the result. Every write that changes a listing (a new
-- product, an edit, a new photo) bumps `wanted` and sets `queued` in the write's transaction;
-- the QC worker claims queued rows with SELECT ... FOR UPDATE SKIP LOCKED and a lease
-- (`locked_until`), checks the listing, and writes its decision with `checked = wanted` as
-- read at the claim, in one transaction with the product's moderation. A listing edited while
-- it was being checked has `wanted` moved on: the row stays queued and is checked again. A
-- worker that dies leaves a lease that runs out, and the row is claimed again.

CREATE TABLE listing_checks (
    product_id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    wanted          BIGINT UNSIGNED NOT NULL DEFAULT 1,
    checked         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    queued          TINYINT(1) NOT NULL DEFAULT 1,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    locked_until    DATETIME(3) NULL,
    last_error      VARCHAR(1000) NULL,
    -- The last automatic decision (NULL: never checked).
    decision        ENUM('approved', 'flagged', 'rejected') NULL,
    -- 0 to 1000 (per mille).
    confidence      SMALLINT UNSIGNED NOT NULL DEFAULT 0,
    -- The findings as JSON ([{check, severity, confidence, detail}]) and as one line.
    findings        TEXT NOT NULL,
    summary         VARCHAR(500) NOT NULL DEFAULT '',
    checked_at      DATETIME(3) NULL,
    -- The admin's QC queue: `pending` waits for an admin (flagged and rejected decisions);
    -- `approved` / `rejected`: what an admin decided (it stands until the listing changes).
    review          ENUM('none', 'pending', 'approved', 'rejected') NOT NULL DEFAULT 'none',
    reviewed_by     BIGINT UNSIGNED NULL,
    reviewed_at     DATETIME(3) NULL,
    created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY listing_checks_due (queued, next_attempt_at),
    KEY listing_checks_review (review, checked_at),
    CONSTRAINT listing_checks_product FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What quality control measured of a photo, once per SHA-256: its size, sharpness (variance
-- of the Laplacian) and perceptual hash (dHash, for near duplicates).
CREATE TABLE image_facts (
    sha256      CHAR(64) NOT NULL PRIMARY KEY,
    width       INT UNSIGNED NOT NULL,
    height      INT UNSIGNED NOT NULL,
    sharpness   DOUBLE NOT NULL,
    dhash       BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What a seller is told: a listing approved or rejected, an import finished or failed, a
-- source gone. Read on the dashboard; `read_at` once they mark it read.
CREATE TABLE seller_notifications (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seller_id   BIGINT UNSIGNED NOT NULL,
    kind        ENUM('sync_complete', 'sync_failed', 'source_gone', 'product_approved',
                     'product_flagged', 'product_rejected') NOT NULL,
    product_id  BIGINT UNSIGNED NULL,
    message     VARCHAR(1000) NOT NULL,
    message_sw  VARCHAR(1000) NOT NULL DEFAULT '',
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    read_at     DATETIME(3) NULL,
    KEY seller_notifications_seller (seller_id, read_at, id),
    CONSTRAINT seller_notifications_seller FOREIGN KEY (seller_id) REFERENCES sellers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
