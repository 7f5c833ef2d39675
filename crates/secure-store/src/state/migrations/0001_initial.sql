-- Secure Store server state, schema version 1.
--
-- Written in the subset of SQL that SQLite (3.35+) and PostgreSQL (12+)
-- both accept unchanged: TEXT and BIGINT columns only, times in Unix
-- seconds, no AUTOINCREMENT/SERIAL (ids come from the `counters` table,
-- audit sequence numbers from the chain itself), `group_name` because
-- GROUP is a keyword. The PostgreSQL backend runs this same file.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
-- next_rule_id: the last rule id handed out (ids are never reused).
-- rules_version: bumped by every rule change, so readers can tell
-- whether a rule set they already hold is still current.
INSERT INTO counters (name, value) VALUES ('next_rule_id', 0);
INSERT INTO counters (name, value) VALUES ('rules_version', 0);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    last_address TEXT
);

CREATE TABLE device_groups (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (device_id, group_name)
);

CREATE TABLE device_serials (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    serial     TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    PRIMARY KEY (device_id, serial)
);
CREATE INDEX device_serials_serial ON device_serials (serial);

CREATE TABLE revocations (
    kind  TEXT NOT NULL CHECK (kind IN ('device', 'serial')),
    value TEXT NOT NULL,
    at    BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

CREATE TABLE rules (
    id         BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('network', 'store')),
    action     TEXT CHECK (action IN ('allow', 'deny')),
    cidr       TEXT,
    group_name TEXT,
    store      TEXT,
    created    BIGINT NOT NULL,
    CHECK ((kind = 'network' AND action IS NOT NULL AND cidr IS NOT NULL AND store IS NULL)
        OR (kind = 'store' AND action IS NULL AND cidr IS NULL
            AND store IS NOT NULL AND group_name IS NOT NULL))
);

-- The hash-chained audit log (docs/AUDIT.md). Append-only: rows are
-- inserted with seq = last seq + 1 inside a write-locked transaction.
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    time      BIGINT NOT NULL,
    decision  TEXT NOT NULL,
    reason    TEXT NOT NULL,
    device    TEXT,
    address   TEXT,
    endpoint  TEXT NOT NULL,
    key_id    TEXT,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_device ON audit (device, seq);
CREATE INDEX audit_time ON audit (time);
