-- 0013 the text-search change log: one row per catalogue write that can change what search
-- finds, written in the same transaction as the write. Every app node's search index reads it
-- by cursor (`id`); no reader claims or deletes rows, so several nodes can each keep their
-- own index. `scope` says what changed: one product, every product of a seller, every product
-- of a category, or everything (after a restore). Rows older than `search.change_log_days`
-- are pruned; `search_horizon` remembers the highest pruned id, so an index whose cursor is
-- older than that knows it missed changes and rebuilds.
CREATE TABLE search_changes (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    scope       ENUM('product', 'seller', 'category', 'all') NOT NULL,
    ref_id      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY search_changes_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE search_horizon (
    one         TINYINT UNSIGNED NOT NULL PRIMARY KEY DEFAULT 1,
    pruned_to   BIGINT UNSIGNED NOT NULL DEFAULT 0
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO search_horizon (one, pruned_to) VALUES (1, 0);
