-- Alerts (issue 5): the state of each alert rule's condition, so that notices are de-duplicated
-- across evaluation rounds and across restarts, and the notices themselves as a durable outbox.
--
-- alerts: one row per alert key (a rule, or a rule and its subject: `crash-loop:mysql`).
--   state          firing while the condition holds, resolved once it cleared.
--   since          when the current state began (UTC).
--   last_notified  when a firing notice or reminder was last queued (NULL: not yet in this
--                  firing); reminders are due `alerts.remind_after_secs` after it.
--   count          how many times the alert has fired.
-- alert_notifications: one row per notice and channel (webhook, email), written in the same
--   transaction as the state change, delivered by the evaluator until sent (retried with
--   back-off, given up after a day as `failed`). Sending twice is possible only if soko dies
--   between the receiver's answer and the UPDATE that marks the row sent.
CREATE TABLE alerts (
    alert_key      VARCHAR(191) NOT NULL PRIMARY KEY,
    state          ENUM('firing', 'resolved') NOT NULL,
    level          ENUM('amber', 'red') NOT NULL,
    summary        VARCHAR(1000) NOT NULL,
    since          DATETIME(3) NOT NULL,
    last_notified  DATETIME(3) NULL,
    count          INT UNSIGNED NOT NULL DEFAULT 1,
    updated_at     DATETIME(3) NOT NULL,
    KEY alerts_state (state, since)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE alert_notifications (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    alert_key        VARCHAR(191) NOT NULL,
    kind             ENUM('firing', 'reminder', 'resolved') NOT NULL,
    channel          ENUM('webhook', 'email') NOT NULL,
    body             MEDIUMTEXT NOT NULL,
    state            ENUM('pending', 'sent', 'failed') NOT NULL DEFAULT 'pending',
    attempts         INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(3) NOT NULL,
    last_error       VARCHAR(1000) NULL,
    created_at       DATETIME(3) NOT NULL,
    sent_at          DATETIME(3) NULL,
    KEY alert_notifications_due (state, next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
