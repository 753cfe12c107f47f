-- 0021 read replicas: the primary's heartbeat, read back on each replica to measure its lag.
--
-- While `database.replicas` is set, the web node writes the primary's own clock (microseconds
-- since the epoch, `NOW(6)` on the primary) into the one row four times a second; replication
-- carries the row to each replica. A replica whose row is older than the primary's newest beat
-- has not applied the next beat: it is behind by at least the primary's time now minus that
-- beat's. Both times are the primary's clock, so no clock skew between the hosts enters the
-- measure, and the app user needs no REPLICATION CLIENT / SLAVE MONITOR privilege.

CREATE TABLE replica_heartbeat (
    id      TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    beat_us BIGINT NOT NULL
) ENGINE=InnoDB;
