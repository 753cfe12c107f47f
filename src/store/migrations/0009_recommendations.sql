-- 0009 recommendations: the visitor x item matrix, precomputed neighbour lists and trending,
-- and the watermark that makes the recommendations worker incremental and resumable.
--
-- Everything here is derived from `events` and can be rebuilt: truncate the tables, set the
-- watermark to 0, and the worker recomputes. Pages read only these tables (never `events`).

-- The matrix: per actor and product, the sum of the actor's event weights (view 1, click 2,
-- wishlist 2.5, whatsapp_start 3). An actor is 'u:<user id>' (an account) or 'v:<visitor
-- cookie>' (anonymous).
CREATE TABLE rec_interactions (
    actor      VARCHAR(40) NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    weight     DOUBLE NOT NULL,
    -- The actor tapped "Chat on WhatsApp" for it: never recommended to them again.
    contacted  TINYINT(1) NOT NULL DEFAULT 0,
    last_at    DATETIME(3) NOT NULL,
    PRIMARY KEY (actor, product_id),
    KEY rec_interactions_product (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

-- Per product: the squared norm of its matrix column (capped cells), kept exact incrementally.
CREATE TABLE rec_items (
    product_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    norm_sq    DOUBLE NOT NULL,
    actors     INT UNSIGNED NOT NULL
) ENGINE = InnoDB;

-- "Buyers also viewed": each product's best neighbours, blended 0.6 collaborative (shrunk
-- co-engagement cosine) / 0.4 visual (embedding cosine), each normalised per list.
CREATE TABLE rec_neighbours (
    product_id   BIGINT UNSIGNED NOT NULL,
    neighbour_id BIGINT UNSIGNED NOT NULL,
    score        DOUBLE NOT NULL,
    source       ENUM('blend', 'collab', 'visual', 'popular') NOT NULL,
    PRIMARY KEY (product_id, neighbour_id),
    KEY rec_neighbours_rank (product_id, score)
) ENGINE = InnoDB;

-- Time-decayed engagement (half-life configurable), refreshed whole by the worker.
CREATE TABLE rec_trending (
    product_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    score      DOUBLE NOT NULL,
    KEY rec_trending_score (score)
) ENGINE = InnoDB;

-- Worker state: `events` = the last event id folded into rec_interactions / rec_neighbours
-- (moved in the same transaction as the rows it produced); the refresh times.
CREATE TABLE rec_state (
    name          VARCHAR(32) NOT NULL PRIMARY KEY,
    last_event_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at    DATETIME(3) NULL
) ENGINE = InnoDB;

INSERT INTO rec_state (name) VALUES ('events'), ('trending'), ('full');
