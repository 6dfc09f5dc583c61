-- The schema as the first version of the bridge created it (v1), kept so that
-- tests/test_migrations.py can replay every upgrade from there. Never changes.

CREATE TABLE practice (
    practice_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE TABLE staff (
    practice_id TEXT NOT NULL REFERENCES practice(practice_id),
    staff_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT true,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (practice_id, staff_id)
);
CREATE TABLE client (
    practice_id        TEXT NOT NULL REFERENCES practice(practice_id),
    client_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    email              TEXT NOT NULL,
    activated          BOOLEAN NOT NULL,
    portal_access      BOOLEAN NOT NULL,
    family_primary_id  TEXT,
    direct_chat_access BOOLEAN NOT NULL DEFAULT true,
    active             BOOLEAN NOT NULL DEFAULT true,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (practice_id, client_id)
);
CREATE INDEX client_family_idx ON client (practice_id, family_primary_id);
CREATE TABLE event_queue (
    seq          {serial},
    event_id     TEXT NOT NULL UNIQUE,
    room_id      TEXT NOT NULL,
    payload      TEXT,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);
CREATE INDEX event_queue_pending_idx ON event_queue (processed_at, seq);
CREATE TABLE appservice_txn (
    txn_id      TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE TABLE audit_log (
    id          {serial},
    practice_id TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    ts          BIGINT NOT NULL,
    effect_key  TEXT UNIQUE
);
CREATE INDEX audit_log_practice_idx ON audit_log (practice_id, id);
