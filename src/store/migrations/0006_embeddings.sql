-- The hybrid product vectors, kept durably in MySQL. Milvus is an index derived from this table:
-- after a Milvus crash, a restore or a reconciliation, vectors are re-upserted from here without
-- re-running the (slow) embedding models. One row per product and embedding profile, so a model
-- change re-embeds into new rows while the old profile keeps serving.
CREATE TABLE product_embeddings (
    product_id   BIGINT UNSIGNED NOT NULL,
    -- The embedding profile (e.g. 'mobilenet-minilm'): fixes the models and the dimension.
    profile      VARCHAR(64) NOT NULL,
    dim          SMALLINT UNSIGNED NOT NULL,
    -- dim little-endian IEEE-754 f32 values: the hybrid vector exactly as upserted into Milvus.
    vector       MEDIUMBLOB NOT NULL,
    -- SHA-256 of the inputs (image content address + text): unchanged inputs are not re-embedded.
    inputs_sha256 CHAR(64) NOT NULL,
    embedded_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (product_id, profile),
    CONSTRAINT product_embeddings_product_fk FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
