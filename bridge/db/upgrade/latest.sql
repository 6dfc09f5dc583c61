-- The bridge's schema as the newest migration leaves it: what a fresh database gets in one step.
-- An existing database replays the upgrades after its version instead (vNN_*.py); a test holds
-- both to the same tables, columns, indexes and constraints on SQLite and PostgreSQL. Change this
-- file together with a new migration. {serial} is an auto-numbered primary key on either.

-- The directory: practices, their staff and clients, as the portal backend last sent them.
CREATE TABLE practice (
    practice_id    TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    plan           TEXT NOT NULL,
    timezone       TEXT NOT NULL,
    settings       TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- Bumped by a practice-wide settings change; chats behind it get their policy re-sent.
    policy_version INTEGER NOT NULL DEFAULT 0,
    -- Moved on by every write of one of the practice's clients (a cached list's version).
    clients_version BIGINT NOT NULL DEFAULT 0,
    -- Moved on by every write of one of its chats' kind, name or members (cached contacts).
    chats_version   BIGINT NOT NULL DEFAULT 0
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

-- Every event Synapse delivered: stored before the transaction is acknowledged, processed in
-- order per room, kept (without payload) after processing to drop redeliveries, which meet the
-- unique (origin_ts, event_id) pair. origin_ts -1: stored before v8, recognised by event id.
CREATE TABLE event_queue (
    seq          {serial},
    event_id     TEXT NOT NULL,
    origin_ts    BIGINT NOT NULL,
    room_id      TEXT NOT NULL,
    payload      TEXT,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);
CREATE INDEX event_queue_pending_idx ON event_queue (processed_at, seq);
CREATE UNIQUE INDEX event_queue_dedupe_idx ON event_queue (origin_ts, event_id);

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

-- Chats: rooms the bridge owns.
CREATE TABLE chat (
    room_id         TEXT PRIMARY KEY,
    practice_id     TEXT NOT NULL REFERENCES practice(practice_id),
    kind            TEXT NOT NULL,
    name            TEXT,
    owner_staff_id  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_message_ts BIGINT NOT NULL,
    last_sender     TEXT,
    deleted         BOOLEAN NOT NULL DEFAULT false,
    -- The practice's policy_version this chat's policy state was last sent for.
    policy_version  INTEGER NOT NULL DEFAULT 0,
    -- The m.room.name the bridge last wrote (a direct chat is named after its client).
    room_name       TEXT,
    -- When last_message_ts last moved, as a change stamp (bridge/chats/stamps.py).
    activity_stamp  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX chat_practice_idx ON chat (practice_id, kind);
CREATE INDEX chat_activity_idx ON chat (practice_id, activity_stamp);

-- Who is in the chat, as the practice sees it: staff by staff id, clients by the client record
-- (sub-records included: their primary's account is the Matrix member).
CREATE TABLE chat_member (
    room_id   TEXT NOT NULL REFERENCES chat(room_id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    member_id TEXT NOT NULL,
    shared    BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (room_id, kind, member_id)
);
CREATE INDEX chat_member_member_idx ON chat_member (kind, member_id);

-- Per-user chat state, mirrored from Matrix account data (the truth) and /sync; read_ts is when
-- the user last read the chat (their receipts, public or private, and their own sends).
CREATE TABLE user_chat_state (
    user_id       TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    favourite     BOOLEAN NOT NULL DEFAULT false,
    marked_unread BOOLEAN NOT NULL DEFAULT false,
    hidden_at     BIGINT,
    read_ts       BIGINT NOT NULL DEFAULT 0,
    -- When the row last changed, as a change stamp (bridge/chats/stamps.py).
    stamp         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX user_chat_state_stamp_idx ON user_chat_state (user_id, stamp);

CREATE TABLE user_sync (
    user_id    TEXT PRIMARY KEY,
    next_batch TEXT NOT NULL
);

-- Bot commands as durable jobs: one row per command event, written in the pipeline's
-- transaction (the unique event id makes a redelivered event a no-op); a worker runs it after
-- the commit and marks it done. The arguments are dropped once it ran.
CREATE TABLE bot_command (
    id          {serial},
    event_id    TEXT NOT NULL UNIQUE,
    room_id     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    command     TEXT NOT NULL,
    args        TEXT,
    received_at BIGINT NOT NULL,
    done_at     BIGINT,
    outcome     TEXT
);
CREATE INDEX bot_command_pending_idx ON bot_command (done_at, id);

-- Each staff member's private room with the bot, and pending confirmations (!pb delete).
CREATE TABLE bot_private_room (
    user_id    TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX bot_private_room_room_idx ON bot_private_room (room_id);

CREATE TABLE bot_confirmation (
    user_id    TEXT NOT NULL,
    code       TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code)
);

CREATE TABLE user_settings (
    user_id    TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The autoresponder: the last automatic reply per chat (at most one per 30 minutes), and the
-- replies to send, written with the client's message and sent after the commit with a
-- transaction id derived from it, so that a resend is deduplicated.
CREATE TABLE autoresponse_window (
    room_id      TEXT PRIMARY KEY,
    last_sent_ts BIGINT NOT NULL
);

CREATE TABLE autoresponse_job (
    trigger_event_id TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    sender           TEXT NOT NULL,
    message          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    sent_event_id    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0
);

-- The latest policy state the bot sent in each room, as the pipeline saw it in room order;
-- content NULL: the room has no policy from the bot (none, or only a forged one).
CREATE TABLE room_policy (
    room_id  TEXT PRIMARY KEY,
    event_id TEXT,
    content  TEXT
);

-- One row per event that broke a rule the Synapse module did not stop, written in the
-- pipeline's transaction; a worker redacts, kicks and explains after the commit.
CREATE TABLE rule_violation (
    event_id   TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    sender     TEXT NOT NULL,
    rule       TEXT NOT NULL,
    max_length INTEGER,
    target     TEXT,
    created_at BIGINT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try   BIGINT NOT NULL DEFAULT 0,
    done_at    BIGINT,
    outcome    TEXT
);
CREATE INDEX rule_violation_pending_idx ON rule_violation (done_at);

-- Every message of every chat in arrival order: who sent it and when, never its content.
-- Unread counts for the chat list come from here, and the writer a reply answers.
CREATE TABLE chat_message (
    id       {serial},
    event_id TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    sender   TEXT NOT NULL,
    ts       BIGINT NOT NULL
);
CREATE INDEX chat_message_room_ts_idx ON chat_message (room_id, ts);

-- One email to one recipient about one chat. The Message-ID stays the same across retries;
-- 'sending' means the bridge stopped in the middle of handing it to the mail server.
CREATE TABLE notification_email (
    id          {serial},
    recipient   TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    practice_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    error       TEXT
);
CREATE INDEX notification_email_recipient_idx ON notification_email (recipient, sent_at);

-- One row per (recipient, message) that may need an email, written in the pipeline's
-- transaction. Status: pending, then sent, read (cancelled by reading), skipped or failed.
CREATE TABLE notification_outbox (
    id         {serial},
    recipient  TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    sender     TEXT NOT NULL,
    message_ts BIGINT NOT NULL,
    due_at     BIGINT NOT NULL,
    retry_at   BIGINT,
    status     TEXT NOT NULL DEFAULT 'pending',
    email_id   BIGINT,
    done_at    BIGINT,
    UNIQUE (recipient, event_id)
);
CREATE INDEX notification_outbox_chat_idx ON notification_outbox (status, recipient, room_id);
CREATE INDEX notification_outbox_event_idx ON notification_outbox (event_id);
CREATE INDEX notification_outbox_done_idx ON notification_outbox (done_at);

-- The devices the bridge minted for portal sessions: every other device of a person is a
-- Matrix app session (ended when their app sign-in ends).
CREATE TABLE portal_device (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    minted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Team members who hold a Matrix app password (only Synapse keeps it, hashed).
CREATE TABLE app_login (
    user_id     TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    issued_at   BIGINT NOT NULL
);
