-- 0011 password resets: one row per reset link (mailed, or printed by `soko admin
-- reset-password`). Only the SHA-256 of the link's token is stored, so a leaked table resets
-- nobody's password. A link works once (used_at) and until expires_at; using one, or setting
-- a password any other way through it, retires every other link of the account.
CREATE TABLE password_resets (
    token_hash  CHAR(64) NOT NULL PRIMARY KEY,
    user_id     BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expires_at  DATETIME(3) NOT NULL,
    used_at     DATETIME(3) NULL,
    -- `mail` or `operator`.
    via         VARCHAR(16) NOT NULL,
    KEY password_resets_user (user_id),
    KEY password_resets_expiry (expires_at),
    CONSTRAINT password_resets_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
