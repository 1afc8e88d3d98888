"""The tables, as SQLAlchemy Core metadata. Migrations in `migrations/` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# 64-bit ids on PostgreSQL; SQLite's autoincrement needs its own INTEGER PRIMARY KEY.
ID = BigInteger().with_variant(Integer, "sqlite")


def id_column() -> Column[int]:
    return Column("id", ID, primary_key=True, autoincrement=True)


def session_ref() -> Column[int]:
    return Column("session_id", ID, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Participants an operator removed from a room: tokens issued to them before that moment
# no longer connect (a new token, issued later, does).
removals = Table(
    "removals",
    metadata,
    Column("room", String(200), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("removed_at", Float, nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    id_column(),
    Column("room", String(200), nullable=False),
    Column("identity", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("client_id", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("ts", Float, nullable=False),
    UniqueConstraint("room", "identity", "client_id", name="uq_chat_client_id"),
    Index("ix_chat_room_id", "room", "id"),
)

# How far each participant has read a room's chat (read receipts survive reconnects).
chat_reads = Table(
    "chat_reads",
    metadata,
    Column("room", String(200), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("message_id", ID, nullable=False),
)

# A mentoring pair (or small group): owns a room and a session log.
pairs = Table(
    "pairs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("room", String(200), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # active | unpublished
    Column("source", String(20), nullable=False),  # operator | matching
    Column("flagged", Boolean, nullable=False, default=False),
    Column("flag_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

pair_members = Table(
    "pair_members",
    metadata,
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Index("ix_pair_members_identity", "identity"),
)

# Phone dial-in (server/phone): a room's PIN, and personal PINs that also say
# who is calling. A PIN is unique across both tables (checked when issued).
phone_room_pins = Table(
    "phone_room_pins",
    metadata,
    Column("room", String(200), primary_key=True),
    Column("pin", String(16), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

phone_participant_pins = Table(
    "phone_participant_pins",
    metadata,
    Column("pin", String(16), primary_key=True),
    Column("room", String(200), nullable=False),
    Column("identity", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("room", "identity", name="uq_phone_participant_pins_room_identity"),
)

# The session log (server/sessionlog), written from room events as they happen.
# A session of a pair's room: from the first join to the last leave (closed_at is when
# the room closed, after the grace period for reconnects).
sessions = Table(
    "sessions",
    metadata,
    id_column(),
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False),
    Column("room", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("closed_at", Float, nullable=True),
    Index("ix_sessions_pair_started", "pair_id", "started_at"),
)

# One row per stretch of presence: a reconnect after leaving is a new interval.
session_attendance = Table(
    "session_attendance",
    metadata,
    id_column(),
    session_ref(),
    Column("identity", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("joined_at", Float, nullable=False),
    Column("left_at", Float, nullable=True),
    Column("leave_reason", String(40), nullable=True),
    Index("ix_session_attendance_session", "session_id"),
)

# The media path: one row per stretch in one mode, with the reason it began.
session_media_segments = Table(
    "session_media_segments",
    metadata,
    id_column(),
    session_ref(),
    Column("identity", String(200), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("previous", String(20), nullable=True),
    Column("reason", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Index("ix_session_media_segments_session", "session_id"),
)

session_quality_samples = Table(
    "session_quality_samples",
    metadata,
    id_column(),
    session_ref(),
    Column("identity", String(200), nullable=False),
    Column("ts", Float, nullable=False),
    Column("inbound_kbps", Float, nullable=False),
    Column("outbound_kbps", Float, nullable=False),
    Column("loss_percent", Float, nullable=False),
    Column("rtt_ms", Float, nullable=True),
    Index("ix_session_quality_samples_session", "session_id"),
)

# Everything else that happened, in order: joins, leaves, reconnects, presence, mode changes.
session_timeline = Table(
    "session_timeline",
    metadata,
    id_column(),
    session_ref(),
    Column("ts", Float, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("identity", String(200), nullable=True),
    Column("detail", String(200), nullable=False, default=""),
    Index("ix_session_timeline_session", "session_id", "id"),
)

session_notes = Table(
    "session_notes",
    metadata,
    id_column(),
    session_ref(),
    Column("author", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Agenda items stay open until ticked off; carried_over counts the sessions they outlived.
agenda_items = Table(
    "agenda_items",
    metadata,
    id_column(),
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("added_at", Float, nullable=False),
    Column("done_at", Float, nullable=True),
    Column("done_by", String(200), nullable=True),
    Column("done_session_id", ID, nullable=True),
    Column("carried_over", Integer, nullable=False, default=0),
    Index("ix_agenda_items_pair", "pair_id"),
)

goals = Table(
    "goals",
    metadata,
    id_column(),
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("due_date", String(10), nullable=True),  # ISO date
    Column("progress", Integer, nullable=False, default=0),
    Column("status", String(20), nullable=False),  # open | done | dropped
    Column("created_by", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_goals_pair", "pair_id"),
)

session_feedback = Table(
    "session_feedback",
    metadata,
    id_column(),
    session_ref(),
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False),
    Column("identity", String(200), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("comment", Text, nullable=True),
    Column("good_fit", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("session_id", "identity", name="uq_session_feedback_session_identity"),
)

# Program settings of the session log (e.g. whether operators may read chat), default off.
sessionlog_settings = Table(
    "sessionlog_settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", String(200), nullable=False),
)

# Every operator read of a transcript (granted or refused) is itself logged.
transcript_reads = Table(
    "transcript_reads",
    metadata,
    id_column(),
    Column("ts", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("pair_id", String(36), nullable=True),
    Column("session_id", ID, nullable=True),
    Column("purpose", String(40), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("messages", Integer, nullable=False),
)

# Matching (server/matching): profiles, the criteria, runs and their draft pairs.
match_profiles = Table(
    "match_profiles",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("role", String(10), nullable=False),
    Column("data", Text, nullable=False),  # Profile.to_json()
    Column("updated_at", Float, nullable=False),
)

match_criteria = Table(
    "match_criteria",
    metadata,
    Column("id", Integer, primary_key=True),  # one row: the program's criteria
    Column("data", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

match_runs = Table(
    "match_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("status", String(20), nullable=False),  # running | done | failed
    Column("progress", Float, nullable=False),
    Column("mode", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
    # The lease: the node running it, renewed every few seconds while it runs.
    Column("node", String(200), nullable=True),
    Column("heartbeat_at", Float, nullable=True),
)

match_results = Table(
    "match_results",
    metadata,
    id_column(),
    Column("run_id", String(36), ForeignKey("match_runs.id", ondelete="CASCADE"), nullable=False),
    Column("mentee", String(200), nullable=False),
    Column("mentor", String(200), nullable=True),  # none: unmatched, see reason
    Column("score", Float, nullable=True),
    Column("contributions", Text, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("slots", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("fixed", Boolean, nullable=False),
    Column("status", String(20), nullable=False),  # draft | published | rematched
    Column("pair_id", String(36), nullable=True),
    UniqueConstraint("run_id", "mentee", name="uq_match_results_run_mentee"),
)

# Pairs an operator rematched as "not a good fit": later runs never propose them again.
match_exclusions = Table(
    "match_exclusions",
    metadata,
    Column("mentee", String(200), primary_key=True),
    Column("mentor", String(200), primary_key=True),
    Column("pair_id", String(36), nullable=True),
    Column("created_at", Float, nullable=False),
)

# Data rights (server/privacy): what an operator did with a person's data, and requests to
# erase it. `subject` is the pseudonym an erased person's identity became (identities may be
# email addresses), so the log outlives the erasure without naming them.
privacy_audit = Table(
    "privacy_audit",
    metadata,
    id_column(),
    Column("ts", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),  # erase | anonymise | retention | ...
    Column("subject", String(200), nullable=True),
    Column("detail", Text, nullable=False),  # JSON: what was changed, counted
)

erasure_requests = Table(
    "erasure_requests",
    metadata,
    id_column(),
    Column("identity", String(200), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("status", String(20), nullable=False),  # open | done
    Column("done_at", Float, nullable=True),
    Index("ix_erasure_requests_identity", "identity"),
)

# Sign-in (server/signin): the people who sign in, their one-time links and their sessions.
# Links and sessions are kept as SHA-256 hashes: a copy of the database opens nothing.
accounts = Table(
    "accounts",
    metadata,
    id_column(),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased
    Column("name", String(200), nullable=False),
    Column("identity", String(200), nullable=True, unique=True),  # participants' pair identity
    Column("role", String(20), nullable=False),  # participant | admin | manager | viewer
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deactivated_at", Float, nullable=True),
)

signin_links = Table(
    "signin_links",
    metadata,
    id_column(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", ID, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_signin_links_account", "account_id"),
)

signin_sessions = Table(
    "signin_sessions",
    metadata,
    id_column(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", ID, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("user_agent", String(200), nullable=False),
    Column("address", String(64), nullable=False),
    Index("ix_signin_sessions_account", "account_id"),
)

# The console (server/console): a participant an operator deactivated leaves the matching
# pool (match_profiles) and waits here, profile and all, until reactivated.
console_inactive_profiles = Table(
    "console_inactive_profiles",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("data", Text, nullable=False),  # the profile's JSON, as match_profiles holds it
    Column("deactivated_at", Float, nullable=False),
)

# Durable jobs (server/jobs): reminders, digests, webhook retries. A node claims a due job
# by taking its lease (`lease_owner` until `lease_until`); a lease that runs out (its node
# died) is taken again. `key` names a job so scheduling it twice is once.
jobs = Table(
    "jobs",
    metadata,
    id_column(),
    Column("kind", String(40), nullable=False),
    Column("key", String(200), nullable=True, unique=True),
    Column("payload", Text, nullable=False),  # JSON
    Column("run_at", Float, nullable=False),
    Column("status", String(12), nullable=False),  # pending | running | done | failed | cancelled
    Column("attempts", Integer, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index("ix_jobs_status_run_at", "status", "run_at"),
)

# Meetings (server/meetings): proposed with candidate times, then booked at one of them,
# optionally every N weeks until a date (occurrences keep the local time in `timezone`).
meetings = Table(
    "meetings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("status", String(12), nullable=False),  # proposed | booked | cancelled
    Column("proposed_by", String(200), nullable=False),
    Column("options", Text, nullable=False),  # JSON: candidate start times, UTC epoch seconds
    Column("start_utc", Float, nullable=True),
    Column("minutes", Integer, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("every_weeks", Integer, nullable=True),
    Column("until", String(10), nullable=True),  # ISO date, inclusive, in `timezone`
    Column("sequence", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_meetings_pair_id", "pair_id"),
)

# A participant's private calendar feed: the URL's secret, kept only as its SHA-256.
calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

# The unread-chat digest (server/meetings/digest.py): how far each member's digests have
# covered each room's chat, and when each person last got one (or asked for none).
chat_digest_marks = Table(
    "chat_digest_marks",
    metadata,
    Column("room", String(200), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("message_id", ID, nullable=False),
)

chat_digest_people = Table(
    "chat_digest_people",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("last_sent_at", Float, nullable=True),
    Column("unsubscribed", Boolean, nullable=False),
)

# Web push (server/push): each browser a person subscribed (the push service's endpoint and
# the keys that encrypt for it), and which channels each person wants for what.
push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    id_column(),
    Column("identity", String(200), nullable=False),
    Column("endpoint", String(2000), nullable=False),
    Column("p256dh", String(200), nullable=False),
    Column("auth", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("endpoint", name="uq_push_subscriptions_endpoint"),
    Index("ix_push_subscriptions_identity", "identity"),
)

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("topic", String(20), primary_key=True),  # reminders | messages
    Column("email", Boolean, nullable=False),
    Column("push", Boolean, nullable=False),
)

# Webhooks (server/webhooks): URLs an operator registered for events, and each delivery of
# an event to one of them with its outcome. A webhook's signing secret is derived from the
# server's secret key and `secret_salt` (never stored). A delivery holds nothing personal:
# the names in what is sent are read when it is sent.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=False),  # JSON: the event types it takes
    Column("format", String(8), nullable=False),  # json | slack | teams
    Column("secret_salt", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    id_column(),
    Column("webhook_id", String(36), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(40), nullable=False),
    Column("event_key", String(200), nullable=False),  # the same happening is delivered once
    Column("pair_id", String(36), nullable=True),
    Column("facts", Text, nullable=False),  # JSON: times, ids, steps; no names, no content
    Column("occurred_at", Float, nullable=False),
    Column("status", String(12), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_attempt_at", Float, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_webhook_id", "webhook_id", "id"),
)
