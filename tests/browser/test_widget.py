"""The chat widget on its demo page, as a visitor's browser runs it: the page is the
gateway's, the widget API is intake's public address (another origin: CORS as a customer's
site meets it)."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import System, Workspace

from .conftest import Api, check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.e2e


def assistant(api: Api, **settings: Any) -> tuple[str, str]:
    """A new assistant with these ticket settings; its id and widget key."""
    assistant_id = f"asst-{uuid4().hex[:10]}"
    saved = api.put(f"/api/v1/assistants/{assistant_id}/ticket-settings", settings)
    return assistant_id, str(saved["widget_key"])


def open_demo(page: Page, system: System, assistant_id: str, key: str) -> None:
    page.goto(f"{system.gateway}/widget-demo?assistant_id={assistant_id}&widget_key={key}")
    page.get_by_label("Your message").fill("My order never arrived.")
    page.keyboard.press("Enter")
    expect(page.get_by_role("list", name="Conversation")).to_contain_text("You: My order")


def test_the_widget_files_a_ticket_and_says_its_number(
    page: Page, system: System, api: Api, owner: Workspace
) -> None:
    assistant_id, key = assistant(api, ticket_creation_enabled=True, require_contact_info=False)
    open_demo(page, system, assistant_id, key)
    check_accessibility(page, "widget demo")
    page.get_by_role("button", name="Talk to a person").click()
    status = page.locator(".hd-status")
    expect(status).to_have_text(re.compile(r"Ticket #\d+ created"))
    screenshot(page, "widget")
    number = int(re.findall(r"#(\d+)", status.inner_text())[0])
    tickets = api.client.get("/api/v1/tickets", params={"assistant_id": assistant_id}).json()
    assert number in [t["number"] for t in tickets["items"]]
    ticket = next(t for t in tickets["items"] if t["number"] == number)
    assert len(ticket["conversation_ids"]) == 1
    # The team opens the linked conversation in one click and reads it as the visitor wrote it.
    sign_in(page, system, owner)
    page.goto(f"{system.gateway}/tickets/{ticket['id']}")
    page.get_by_role("button", name=f"Open conversation {ticket['conversation_ids'][0]}").click()
    transcript = page.get_by_role("region", name=re.compile("Transcript"))
    expect(transcript).to_contain_text("My order never arrived.")


def test_the_widget_asks_for_contact_details_when_the_assistant_requires_them(
    page: Page, system: System, api: Api
) -> None:
    assistant_id, key = assistant(api, ticket_creation_enabled=True, require_contact_info=True)
    with page.expect_response(re.compile(r"/widget/v1/settings$")):
        open_demo(page, system, assistant_id, key)
    # Asked first: the widget read the assistant's settings, so nothing was filed yet.
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.get_by_role("form", name="Your contact details")).to_be_visible()
    expect(page.get_by_label("Your name")).to_be_focused()
    requests = api.client.get(f"/api/v1/assistants/{assistant_id}/ticket-requests").json()
    assert requests == []
    page.get_by_label("Your name").fill("Ada Visitor")
    page.get_by_label("Your email").fill("not-an-email")
    page.get_by_role("button", name="Send to the team").click()
    expect(page.locator(".hd-status")).to_contain_text("does not look right")
    page.get_by_label("Your email").fill("ada@example.com")
    page.get_by_role("button", name="Send to the team").click()
    expect(page.locator(".hd-status")).to_have_text(re.compile(r"Ticket #\d+ created"))
    check_accessibility(page, "widget demo after filing")


def test_the_widget_shows_a_refusal_in_plain_words_and_the_admin_counts_it(
    page: Page, system: System, api: Api, owner: Workspace
) -> None:
    assistant_id, key = assistant(api, ticket_creation_enabled=False, require_contact_info=False)
    open_demo(page, system, assistant_id, key)
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.locator(".hd-status")).to_have_text(
        "This team does not take tickets from the chat right now."
    )
    sign_in(page, system, owner)
    page.get_by_role("link", name="Assistants").click()
    page.get_by_label("Assistant id").fill(assistant_id)
    page.get_by_role("button", name="Open settings").click()
    per_reason = page.get_by_role("table", name="Refusals per reason")
    expect(per_reason.get_by_role("row", name="ticket_creation_disabled 1")).to_be_visible()
    recent = page.get_by_role("table", name="Recent rejected requests")
    expect(recent).to_contain_text("ticket_creation_disabled")
