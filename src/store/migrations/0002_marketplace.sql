-- 0002 marketplace: sessions, interaction events, leads, favourites, and the audit log.

-- Browser sessions. The cookie holds a random token; only its SHA-256 is stored, so a leaked
-- table does not log anyone in. A session dies when it expires, when it is deleted (log out),
-- or when the user's token_version moves past the one it was created with (log out everywhere,
-- password change).
CREATE TABLE sessions (
    token_hash    CHAR(64) NOT NULL PRIMARY KEY,
    user_id       BIGINT UNSIGNED NOT NULL,
    token_version INT UNSIGNED NOT NULL,
    created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    last_seen_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expires_at    DATETIME(3) NOT NULL,
    ip            VARCHAR(45) NOT NULL DEFAULT '',
    user_agent    VARCHAR(255) NOT NULL DEFAULT '',
    KEY sessions_user (user_id),
    KEY sessions_expiry (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What buyers did, for seller analytics and recommendations. `visitor` is the anonymous
-- visitor cookie (random), `user_id` the account when logged in.
CREATE TABLE events (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind       ENUM('view', 'click', 'wishlist', 'whatsapp_start') NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    seller_id  BIGINT UNSIGNED NOT NULL,
    user_id    BIGINT UNSIGNED NULL,
    visitor    CHAR(32) NOT NULL DEFAULT '',
    referrer   VARCHAR(255) NOT NULL DEFAULT '',
    device     ENUM('mobile', 'tablet', 'desktop', 'bot', 'other') NOT NULL DEFAULT 'other',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY events_seller_time (seller_id, created_at),
    KEY events_product_time (product_id, created_at),
    KEY events_visitor (visitor, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A buyer who tapped "Chat on WhatsApp": the seller's CRM inbox.
CREATE TABLE leads (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id BIGINT UNSIGNED NOT NULL,
    seller_id  BIGINT UNSIGNED NOT NULL,
    user_id    BIGINT UNSIGNED NULL,
    visitor    CHAR(32) NOT NULL DEFAULT '',
    status     ENUM('new', 'contacted', 'converted', 'lost') NOT NULL DEFAULT 'new',
    note       VARCHAR(1000) NOT NULL DEFAULT '',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY leads_seller (seller_id, status, id),
    CONSTRAINT leads_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE,
    CONSTRAINT leads_seller_fk FOREIGN KEY (seller_id) REFERENCES sellers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE favourites (
    user_id    BIGINT UNSIGNED NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (user_id, product_id),
    KEY favourites_product (product_id),
    CONSTRAINT favourites_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT favourites_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every sensitive action: who, what, when, from where. Appended by the application, never
-- updated or deleted by it.
CREATE TABLE audit_log (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    actor_user_id BIGINT UNSIGNED NULL,
    action        VARCHAR(64) NOT NULL,
    target        VARCHAR(128) NOT NULL DEFAULT '',
    detail        VARCHAR(2000) NOT NULL DEFAULT '',
    ip            VARCHAR(45) NOT NULL DEFAULT '',
    created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY audit_log_time (created_at),
    KEY audit_log_actor (actor_user_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
