-- Limits (issue 12, items 3-4): views and leads recorded once per visitor, product and day;
-- raw events rolled up into daily counts, then pruned.
--
-- event_marks: one row per (UTC day, kind, product, visitor) whose view or WhatsApp tap was
--   recorded today; a second one finds the row and records nothing. `address` is the client
--   (its address, or /64) and caps how many distinct visitors one address may record per
--   product and day (`limits.events_per_address`), so a client that drops or forges the
--   visitor cookie adds at most that many rows. Rows older than yesterday are deleted by the
--   event roll-up worker.
-- event_days: raw events older than `limits.raw_event_days`, counted per UTC day, product and
--   kind, written in the same transaction that deletes the raw rows (all or nothing), so the
--   seller insights, which add both, show the same totals before and after.
CREATE TABLE event_marks (
    day        DATE NOT NULL,
    kind       ENUM('view', 'click', 'wishlist', 'whatsapp_start') NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    visitor    VARCHAR(64) NOT NULL,
    address    VARCHAR(64) NOT NULL,
    PRIMARY KEY (day, kind, product_id, visitor),
    KEY event_marks_address (day, kind, product_id, address)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

CREATE TABLE event_days (
    day        DATE NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    seller_id  BIGINT UNSIGNED NOT NULL,
    kind       ENUM('view', 'click', 'wishlist', 'whatsapp_start') NOT NULL,
    n          BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (day, product_id, kind),
    KEY event_days_seller (seller_id, day)
) ENGINE = InnoDB;

-- The roll-up finds the oldest raw day by time.
CREATE INDEX events_time ON events (created_at);
