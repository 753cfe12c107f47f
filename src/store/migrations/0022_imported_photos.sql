-- 0022 the photos an import took from a product's source page. A later import of the page
-- whose photo list changed removes the ones the page no longer shows (and only those: a photo
-- the seller added by hand is never here), so that the page's new photos find room.
CREATE TABLE imported_photos (
    product_id BIGINT UNSIGNED NOT NULL,
    sha256     CHAR(64) NOT NULL,
    PRIMARY KEY (product_id, sha256),
    CONSTRAINT imported_photos_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
