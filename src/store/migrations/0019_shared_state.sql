-- 0019 state several nodes share (issue 16): certificates, HTTP-01 answers, login budgets.
--
-- tls_state: with `tls.store: database`, the ACME account and each certificate (chain and
-- key together, one row, so a node never loads a chain with another's key), sealed with age to
-- the secrets file's `tls_store_key`: the bytes here are never a PEM or a key in the clear.
-- `name` is `account <ca>` or `cert <ca> <names>`; nodes poll `updated_at` to reload.
CREATE TABLE tls_state (
    name        VARCHAR(300) NOT NULL PRIMARY KEY,
    value       MEDIUMBLOB NOT NULL,
    updated_at  DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

-- acme_challenges: HTTP-01 answers being validated, written before the CA is told to look, so
-- that whichever node the load balancer sends the validation to answers it. Not secret (the
-- CA fetches them over plain HTTP); deleted after the order, and expired rows are pruned.
CREATE TABLE acme_challenges (
    token              VARCHAR(128) NOT NULL PRIMARY KEY,
    key_authorization  VARCHAR(255) NOT NULL,
    expires_at         DATETIME(3) NOT NULL,
    KEY acme_challenges_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

-- login_budgets: with `limits.login_state: database`, failed logins per (account, address)
-- and, in the row whose address is '', per account from addresses new to it. One row per key,
-- written by INSERT … ON DUPLICATE KEY UPDATE; times are unix milliseconds of the database's
-- clock (every node counts on the same clock); rows past `expires_ms` are pruned.
CREATE TABLE login_budgets (
    account     VARCHAR(254) NOT NULL,
    address     VARCHAR(64) NOT NULL,
    failures    INT UNSIGNED NOT NULL DEFAULT 0,
    last_ms     BIGINT NOT NULL DEFAULT 0,
    until_ms    BIGINT NOT NULL DEFAULT 0,
    -- When this address last logged in to the account (0: never): the owner's address.
    known_ms    BIGINT NOT NULL DEFAULT 0,
    -- The account row's rate of strangers' attempts (GCRA's theoretical arrival time).
    tat_ms      BIGINT NOT NULL DEFAULT 0,
    expires_ms  BIGINT NOT NULL,
    PRIMARY KEY (account, address),
    KEY login_budgets_expiry (expires_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
