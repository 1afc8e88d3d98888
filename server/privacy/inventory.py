"""Every column that names a person, in one list: export and erasure both read it.

A table that holds a person's data and is missing here is a table whose rows survive an
erasure, so tests/security/test_data_rights.py checks that every column called like an
identity (`identity`, `author`, `added_by`, `mentee`, ...) in server/store/schema.py is
listed, either here or in NOT_PERSONAL with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Table

from server.store import schema


@dataclass(frozen=True)
class PersonColumn:
    """`table.column` holds a person's identity.

    - `names`: columns with their display name (replaced on erasure and anonymisation);
    - `content`: columns with what they wrote (replaced by "removed" on erasure);
    - `delete`: the whole row goes on erasure and anonymisation (profile, feedback, PINs).
    """

    table: Table
    column: str
    names: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    delete: bool = False

    @property
    def identity(self) -> Column[str]:
        return self.table.c[self.column]

    @property
    def key(self) -> str:
        return f"{self.table.name}.{self.column}"


PERSON_COLUMNS: tuple[PersonColumn, ...] = (
    PersonColumn(schema.match_profiles, "identity", delete=True),
    PersonColumn(schema.session_feedback, "identity", delete=True),
    PersonColumn(schema.phone_participant_pins, "identity", delete=True),
    PersonColumn(schema.chat_reads, "identity", delete=True),
    PersonColumn(schema.chat_messages, "identity", names=("name",), content=("text",)),
    PersonColumn(schema.pair_members, "identity", names=("name",)),
    PersonColumn(schema.session_attendance, "identity", names=("name",)),
    PersonColumn(schema.session_media_segments, "identity"),
    PersonColumn(schema.session_quality_samples, "identity"),
    PersonColumn(schema.session_timeline, "identity"),
    PersonColumn(schema.session_notes, "author", content=("text",)),
    PersonColumn(schema.agenda_items, "added_by", content=("text",)),
    PersonColumn(schema.agenda_items, "done_by"),
    PersonColumn(schema.goals, "created_by", content=("title",)),
    PersonColumn(schema.match_results, "mentee"),
    PersonColumn(schema.match_results, "mentor"),
    PersonColumn(schema.match_exclusions, "mentee"),
    PersonColumn(schema.match_exclusions, "mentor"),
    PersonColumn(schema.removals, "identity"),
    PersonColumn(schema.erasure_requests, "identity"),
    PersonColumn(schema.console_inactive_profiles, "identity", delete=True),
    # A participant's sign-in account (email, name; its links and sessions go with it).
    PersonColumn(schema.accounts, "identity", delete=True),
    PersonColumn(schema.calendar_feeds, "identity", delete=True),  # the feed dies with them
    PersonColumn(schema.meetings, "proposed_by"),
    PersonColumn(schema.chat_digest_marks, "identity", delete=True),
    PersonColumn(schema.chat_digest_people, "identity", delete=True),
    # Their browsers' push subscriptions and channel choices go with them (server/push).
    PersonColumn(schema.push_subscriptions, "identity", delete=True),
    PersonColumn(schema.notification_channels, "identity", delete=True),
)

# Columns that look like a person but are not a participant's data, and why.
NOT_PERSONAL: dict[str, str] = {
    "transcript_reads.actor": "an operator's label for the audit of transcript reads",
    "privacy_audit.actor": "the operator who acted, kept as the audit requires",
    "privacy_audit.subject": "the pseudonym an erased identity became",
}

# Free text that may mention a person by name (a match explanation names both), rewritten
# where the person appears. A pair's title ("Ada & Bob" by default) and flag reason ("said
# <identity> after session 2") are rewritten for the pairs the person is in (erasure.py).
MENTIONS: tuple[tuple[Table, str, tuple[str, ...]], ...] = (
    (schema.match_results, "mentee", ("explanation", "reason", "contributions")),
    (schema.match_results, "mentor", ("explanation", "reason", "contributions")),
)
