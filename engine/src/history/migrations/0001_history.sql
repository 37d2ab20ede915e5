-- The history store: one row per source and settled UTC day, holding that day's answer of
-- the datasets the source stores (JSON), and the definition digest of the source that
-- produced it (a changed query makes the row stale, never wrong). Snapshots keep one value
-- per day of a figure a service only gives for "now". Portable: SQLite and PostgreSQL.
CREATE TABLE history_days (
    source     TEXT NOT NULL,
    day        TEXT NOT NULL,
    definition TEXT NOT NULL,
    data       TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (source, day)
);

CREATE TABLE history_snapshots (
    source      TEXT NOT NULL,
    field       TEXT NOT NULL,
    day         TEXT NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (source, field, day)
);
