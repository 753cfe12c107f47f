-- 0001 foundation: accounts, sellers, catalogue, images, and the vector-sync outbox.
--
-- Conventions for every migration:
--   * InnoDB, utf8mb4 with a Unicode collation (names and descriptions carry emoji and Swahili).
--   * Times are UTC, DATETIME(3) (the pool sets time_zone = '+00:00').
--   * Money is BIGINT minor units plus an ISO 4217 currency code: never floats, never strings.
--   * Syntax that MariaDB 10.11 (embedded), MySQL 8 and TiDB all accept: no triggers (TiDB has
--     none), so the application writes outbox rows in the same transaction as the change.

CREATE TABLE users (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email         VARCHAR(254) NULL,
    -- E.164, e.g. +254712345678.
    phone         VARCHAR(16) NULL,
    name          VARCHAR(120) NOT NULL,
    -- argon2id PHC string.
    password_hash VARCHAR(255) NOT NULL,
    role          ENUM('user', 'admin') NOT NULL DEFAULT 'user',
    status        ENUM('active', 'suspended') NOT NULL DEFAULT 'active',
    -- Bumped on password change or "log out everywhere": tokens carrying an older value die.
    token_version INT UNSIGNED NOT NULL DEFAULT 0,
    locale        VARCHAR(8) NOT NULL DEFAULT 'en',
    created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY users_email (email),
    UNIQUE KEY users_phone (phone),
    CONSTRAINT users_login CHECK (email IS NOT NULL OR phone IS NOT NULL)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE categories (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    slug       VARCHAR(64) NOT NULL,
    name       VARCHAR(80) NOT NULL,
    -- Swahili name; the storefront falls back to `name` when empty.
    name_sw    VARCHAR(80) NOT NULL DEFAULT '',
    parent_id  BIGINT UNSIGNED NULL,
    sort_order INT NOT NULL DEFAULT 0,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY categories_slug (slug),
    CONSTRAINT categories_parent FOREIGN KEY (parent_id) REFERENCES categories (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE sellers (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- One seller per user.
    user_id        BIGINT UNSIGNED NOT NULL,
    store_name     VARCHAR(120) NOT NULL,
    slug           VARCHAR(140) NOT NULL,
    description    TEXT NOT NULL,
    -- E.164; the WhatsApp funnel sends buyers to this number, never a global one.
    whatsapp_phone VARCHAR(16) NOT NULL,
    city           VARCHAR(80) NOT NULL DEFAULT 'Nairobi',
    category_id    BIGINT UNSIGNED NULL,
    catalogue_url  VARCHAR(2048) NULL,
    status         ENUM('pending', 'approved', 'suspended', 'rejected') NOT NULL DEFAULT 'pending',
    -- Shown to the seller when an admin rejects or suspends.
    status_reason  VARCHAR(500) NOT NULL DEFAULT '',
    rating_sum     INT UNSIGNED NOT NULL DEFAULT 0,
    rating_count   INT UNSIGNED NOT NULL DEFAULT 0,
    total_sales    INT UNSIGNED NOT NULL DEFAULT 0,
    last_synced_at DATETIME(3) NULL,
    created_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY sellers_user (user_id),
    UNIQUE KEY sellers_slug (slug),
    KEY sellers_status (status, id),
    CONSTRAINT sellers_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT sellers_category_fk FOREIGN KEY (category_id) REFERENCES categories (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE products (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seller_id         BIGINT UNSIGNED NOT NULL,
    category_id       BIGINT UNSIGNED NULL,
    name              VARCHAR(200) NOT NULL,
    description       TEXT NOT NULL,
    -- Integer minor units (cents); NULL is "Contact for price" (imported listings).
    price_minor       BIGINT NULL,
    currency          CHAR(3) NOT NULL DEFAULT 'KES',
    stock             INT UNSIGNED NOT NULL DEFAULT 0,
    -- Seller's switch: a hidden product is kept but not shown.
    status            ENUM('active', 'hidden') NOT NULL DEFAULT 'active',
    -- Admin's decision; only approved products of approved sellers are public.
    moderation        ENUM('approved', 'flagged', 'rejected') NOT NULL DEFAULT 'approved',
    moderation_reason VARCHAR(500) NOT NULL DEFAULT '',
    source            ENUM('manual', 'import') NOT NULL DEFAULT 'manual',
    source_url        VARCHAR(2048) NULL,
    created_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    deleted_at        DATETIME(3) NULL,
    KEY products_feed (status, moderation, id),
    KEY products_seller (seller_id, id),
    KEY products_category (category_id, id),
    FULLTEXT KEY products_text (name, description),
    CONSTRAINT products_price CHECK (price_minor IS NULL OR price_minor >= 0),
    CONSTRAINT products_seller_fk FOREIGN KEY (seller_id) REFERENCES sellers (id) ON DELETE CASCADE,
    CONSTRAINT products_category_fk FOREIGN KEY (category_id) REFERENCES categories (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE product_images (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id BIGINT UNSIGNED NOT NULL,
    position   SMALLINT UNSIGNED NOT NULL DEFAULT 0,
    -- Content address of the original on disk (images/ab/cdef...); variants derive from it.
    sha256     CHAR(64) NOT NULL,
    mime       VARCHAR(32) NOT NULL,
    width      INT UNSIGNED NOT NULL,
    height     INT UNSIGNED NOT NULL,
    bytes      INT UNSIGNED NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY product_images_position (product_id, position),
    KEY product_images_sha (sha256),
    CONSTRAINT product_images_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Durable queue of vector-store work: written in the same transaction as the product change,
-- drained by the vector-sync worker with SELECT ... FOR UPDATE SKIP LOCKED, deleted when done.
CREATE TABLE vector_outbox (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id      BIGINT UNSIGNED NOT NULL,
    op              ENUM('upsert', 'delete') NOT NULL,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    last_error      VARCHAR(1000) NULL,
    created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY vector_outbox_due (next_attempt_at, id),
    KEY vector_outbox_product (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per background worker: when it last proved alive, and what it last did.
CREATE TABLE worker_heartbeats (
    worker     VARCHAR(64) NOT NULL PRIMARY KEY,
    beat_at    DATETIME(3) NOT NULL,
    detail     VARCHAR(1000) NOT NULL DEFAULT ''
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
