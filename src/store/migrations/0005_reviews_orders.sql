-- 0005 reviews and orders: one review per user per product; a converted lead records an order.

CREATE TABLE reviews (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id BIGINT UNSIGNED NOT NULL,
    user_id    BIGINT UNSIGNED NOT NULL,
    rating     TINYINT UNSIGNED NOT NULL,
    body       VARCHAR(2000) NOT NULL DEFAULT '',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY reviews_one_per_user (product_id, user_id),
    CONSTRAINT reviews_rating CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT reviews_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE,
    CONSTRAINT reviews_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE orders (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    lead_id     BIGINT UNSIGNED NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    seller_id   BIGINT UNSIGNED NOT NULL,
    buyer_name  VARCHAR(120) NOT NULL DEFAULT '',
    buyer_phone VARCHAR(16) NOT NULL DEFAULT '',
    quantity    INT UNSIGNED NOT NULL DEFAULT 1,
    total_minor BIGINT NOT NULL,
    currency    CHAR(3) NOT NULL DEFAULT 'KES',
    status      ENUM('initiated', 'confirmed', 'shipped', 'delivered', 'cancelled') NOT NULL DEFAULT 'initiated',
    notes       VARCHAR(1000) NOT NULL DEFAULT '',
    created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY orders_lead (lead_id),
    KEY orders_seller (seller_id, status, id),
    CONSTRAINT orders_total CHECK (total_minor >= 0 AND quantity >= 1),
    CONSTRAINT orders_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE,
    CONSTRAINT orders_seller_fk FOREIGN KEY (seller_id) REFERENCES sellers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
