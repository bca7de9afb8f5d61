"""An assistant's ticket settings as its workspace configures them. Every save that changes
something, and every new widget key or identity secret, is kept in the assistant's history
and announced on `intake.assistants.v1`, never with a key's value."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared.contracts.envelope import Actor, EventEnvelope
from shared.contracts.topics import INTAKE_ASSISTANTS
from shared.contracts.widget import AssistantTicketSettings, WidgetEventType

from .events import SOURCE, RecordsMessages
from .requests import AssistantSettings, InvalidSettings, settings_changes
from .widget_access import clean_allowed_origins, new_identity_secret, new_widget_key

Credential = Literal["widget_key", "identity_secret"]


def wanted_origins(wanted: AssistantTicketSettings) -> tuple[str, ...] | None:
    """The origins a save lists, canonical; None: the save leaves them as they are."""
    if wanted.allowed_origins is None:
        return None
    try:
        return clean_allowed_origins(wanted.allowed_origins)
    except ValueError as error:
        raise InvalidSettings(f"allowed_origins: {error}.") from error


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """One entry of an assistant's history: `changes` as `{field: {"from", "to"}}`."""

    changed_by: str
    changed_at: datetime
    changes: dict[str, Any]


@dataclass(slots=True)
class Assistant(RecordsMessages):
    settings: AssistantSettings
    stored: bool = True  # False until the first save is written
    unsaved_changes: list[SettingsChange] = field(default_factory=list)

    @classmethod
    def configure(
        cls,
        before: Assistant | None,
        workspace_id: UUID,
        assistant_id: str,
        wanted: AssistantTicketSettings,
        origins: tuple[str, ...] | None,
        member_id: UUID,
        now: datetime,
    ) -> Assistant:
        """An admin's save (`origins`: see `wanted_origins`); the first one gives the
        assistant its widget key. What the save leaves out stays as it was."""
        old = before.settings if before else None
        changes = settings_changes(
            old,
            wanted.ticket_creation_enabled,
            wanted.require_contact_info,
            origins,
            wanted.identity_verification,
        )
        settings = replace(
            old or AssistantSettings(assistant_id, workspace_id, False, False, new_widget_key()),
            ticket_creation_enabled=wanted.ticket_creation_enabled,
            require_contact_info=wanted.require_contact_info,
        )
        if origins is not None:
            settings = replace(settings, allowed_origins=origins)
        if wanted.identity_verification is not None:
            settings = replace(settings, identity_verification=wanted.identity_verification)
        assistant = before or cls(settings, stored=False)
        assistant.settings = settings
        if changes:
            assistant._changed(member_id, changes, now)
        return assistant

    def replace_credential(self, what: Credential, member_id: UUID, now: datetime) -> str:
        """A new widget key (the one it replaces is refused from now on) or identity secret;
        returns it, to be shown this once."""
        old = self.settings
        if what == "widget_key":
            value = new_widget_key()
            self.settings = replace(old, previous_widget_key=old.widget_key, widget_key=value)
        else:
            value = new_identity_secret()
            self.settings = replace(old, identity_secret=value)
        replaced = what == "widget_key" or old.identity_secret is not None
        self._changed(
            member_id, {what: {"from": "(replaced)" if replaced else None, "to": "(new)"}}, now
        )
        return value

    def _changed(self, member_id: UUID, changes: dict[str, Any], now: datetime) -> None:
        self.unsaved_changes.append(SettingsChange(str(member_id), now, changes))
        self._send(
            INTAKE_ASSISTANTS,
            EventEnvelope(
                type=WidgetEventType.SETTINGS_CHANGED,
                source=SOURCE,
                time=now,
                workspace_id=UUID(str(self.settings.workspace_id)),
                subject=self.settings.assistant_id,
                sequence=self._next_sequence(),
                actor=Actor(type="member", id=str(member_id)),
                data={"changes": changes},
            ),
        )
