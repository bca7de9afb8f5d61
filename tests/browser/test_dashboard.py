"""The dashboard in a real browser, against the running system: what a team member does."""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from shared.auth import issue_token
from tests.e2e.conftest import System, Workspace

from .conftest import Api, check_accessibility, hire, login_url, screenshot, sign_in

pytestmark = pytest.mark.e2e

# What a live change may take to show, in ms: ticket-core's commit, its relay, Kafka, the
# gateway's reader, the stream and the page's fetch, on a CI machine that runs another test
# worker's services beside these. The tests say that it shows without a reload, not how fast.
LIVE_MS = 15_000


def test_the_sign_in_link_signs_in_and_leaves_no_token_in_the_address_bar(
    page: Page, system: System, owner: Workspace
) -> None:
    link = login_url(system, owner)
    assert link.startswith(f"{system.gateway}/#token=")
    page.goto(link)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    assert "token" not in page.url
    stored = page.evaluate("sessionStorage.getItem('helpdesk.token')")
    assert stored == link.split("#token=", 1)[1]
    check_accessibility(page, "tickets list")
    # A reload keeps the tab signed in (session storage), with no token in the URL.
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_an_expired_or_refused_token_brings_back_a_clear_sign_in_page(
    page: Page, system: System, owner: Workspace
) -> None:
    expired = issue_token(
        UUID(owner.member_id),
        UUID(owner.workspace_id),
        system.env["HELPDESK_JWT_SECRET"],
        timedelta(seconds=-60),
    )
    page.goto(f"{system.gateway}/#token={expired}")
    expect(page.get_by_role("heading", name="Sign in to the help desk")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("refused your sign-in")
    expect(page.get_by_text("helpdesk login --workspace")).to_be_visible()
    assert "token" not in page.url
    check_accessibility(page, "sign-in page")
    screenshot(page, "sign-in")


def test_a_ticket_made_through_the_form_is_found_in_the_list(
    page: Page, system: System, owner: Workspace
) -> None:
    sign_in(page, system, owner)
    page.get_by_role("button", name="New ticket").click()
    # The API's refusal shows next to the field it concerns.
    page.get_by_label("Subject", exact=True).fill("   ")
    page.get_by_role("button", name="Create ticket").click()
    expect(page.locator("#new-subject-error")).to_be_visible()
    expect(page.get_by_label("Subject", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Priority", exact=True)).to_have_value("normal")
    check_accessibility(page, "new ticket form")
    screenshot(page, "new-ticket")
    subject = f"Printer on fire {uuid4().hex[:6]}"
    page.get_by_label("Subject", exact=True).fill(subject)
    page.get_by_label("Description", exact=True).fill("Smoke everywhere.")
    page.get_by_label("Priority", exact=True).select_option("high")
    page.get_by_role("button", name="Create ticket").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(subject)
    page.get_by_role("link", name="← All tickets").click()
    page.get_by_label("Search subjects").fill(subject)
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=subject))
    expect(row).to_contain_text("High")
    expect(row).to_contain_text("Unassigned")


def test_a_ticket_can_be_made_with_the_keyboard_alone(
    page: Page, system: System, owner: Workspace
) -> None:
    sign_in(page, system, owner)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="New ticket").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Subject", exact=True)).to_be_focused()
    subject = f"Typed only {uuid4().hex[:6]}"
    page.keyboard.type(subject)
    page.keyboard.press("Tab")
    page.keyboard.type("No mouse here.")
    page.keyboard.press("Tab")  # Priority
    page.keyboard.press("Tab")  # Assignee
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create ticket")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text(subject)


def test_a_search_that_matches_a_closed_ticket_says_so_and_shows_it(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    word = f"kettle{uuid4().hex[:6]}"
    ticket = api.post("/api/v1/tickets", {"subject": f"Broken {word}"})
    api.patch_ticket(ticket, status="closed")
    sign_in(page, system, owner)
    page.get_by_label("Search subjects").fill(word)
    page.keyboard.press("Enter")
    hint = page.get_by_text(re.compile(r"1 more in Closed"))
    expect(hint).to_be_visible()
    # The search's own answer, not a slower one of the list before it: no active ticket matches.
    expect(page.get_by_text("No tickets match.")).to_be_visible()
    screenshot(page, "tickets-hint")
    page.get_by_role("button", name="show").click()
    expect(page.get_by_role("button", name=re.compile(r"^Closed"))).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.get_by_role("link", name=f"Broken {word}")).to_be_visible()


def test_more_tickets_come_page_by_page(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    word = f"batch{uuid4().hex[:6]}"
    tickets = [api.post("/api/v1/tickets", {"subject": f"{word} {n}"}) for n in range(26)]
    sign_in(page, system, owner)
    page.get_by_label("Search subjects").fill(word)
    page.keyboard.press("Enter")
    rows = page.locator("table.tickets tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_role("button", name=re.compile(r"^Active"))).to_contain_text("26")
    page.get_by_role("button", name="Show more tickets").click()
    expect(rows).to_have_count(26)
    expect(page.get_by_role("button", name="Show more tickets")).to_have_count(0)
    # A live update keeps every row shown, not just the first page's.
    api.patch_ticket(tickets[0], priority="critical")
    expect(rows.filter(has_text="Critical")).to_have_count(1)
    expect(rows).to_have_count(26)


def test_status_priority_and_a_note_are_saved_and_shown_in_the_timeline(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    ticket = api.post("/api/v1/tickets", {"subject": f"Timeline {uuid4().hex[:6]}"})
    sign_in(page, system, owner)
    page.goto(f"{system.gateway}/tickets/{ticket['id']}")
    # Only the statuses the transition table allows from `new` are offered.
    expect(page.get_by_label("Status", exact=True)).to_have_value("new")
    offered = page.get_by_label("Status", exact=True).locator("option").all_inner_texts()
    assert offered == [
        "New",
        "Open",
        "In progress",
        "Waiting on customer",
        "Resolved",
        "Closed",
        "Spam",
    ]
    page.get_by_label("Status", exact=True).select_option("in_progress")
    page.get_by_label("Priority", exact=True).select_option("critical")
    email = owner_email(api, owner)
    page.get_by_label("Assignee", exact=True).select_option(label=email)
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    page.get_by_label("Internal note").fill("Called the customer.")
    page.get_by_role("button", name="Add note").click()
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("status: New → In progress")
    expect(timeline).to_contain_text("priority: Normal → Critical")
    expect(timeline).to_contain_text(f"assignee: Unassigned → {email}")
    expect(timeline).to_contain_text("Note added")
    expect(timeline).to_contain_text(f"by {email}")
    check_accessibility(page, "ticket page")
    screenshot(page, "ticket")


def test_the_timeline_shows_an_event_the_activity_log_stores_late(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    """The live stream announces an event as soon as ticket-core publishes it; the activity log
    stores it on its own time. Here activity-log is frozen (SIGSTOP) while a note is added,
    so the page's first fetch of the timeline cannot hold it: the page fetches again until
    it does, without a reload."""
    ticket = api.post("/api/v1/tickets", {"subject": f"Late {uuid4().hex[:6]}"})
    sign_in(page, system, owner)
    page.goto(f"{system.gateway}/tickets/{ticket['id']}")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Created")
    activity_log = system.running.processes["activity-log"]
    os.kill(activity_log.pid, signal.SIGSTOP)
    try:
        api.post(f"/api/v1/tickets/{ticket['id']}/notes", {"body": "Stored late."})
        page.wait_for_timeout(1500)
        expect(timeline).not_to_contain_text("Note added")
    finally:
        os.kill(activity_log.pid, signal.SIGCONT)
    expect(timeline).to_contain_text("Note added", timeout=LIVE_MS)


def owner_email(api: Api, owner: Workspace) -> str:
    answer = api.client.get(f"/api/v1/members/{owner.member_id}")
    return str(answer.json()["email"])


def test_a_change_made_through_the_api_appears_without_a_reload(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    ticket = api.post("/api/v1/tickets", {"subject": f"Live {uuid4().hex[:6]}"})
    sign_in(page, system, owner)
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    page.goto(f"{system.gateway}/tickets/{ticket['id']}")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    api.patch_ticket(ticket, priority="low")
    expect(page.get_by_label("Priority", exact=True)).to_have_value("low", timeout=LIVE_MS)
    expect(page.locator(".timeline")).to_contain_text("priority: Normal → Low", timeout=LIVE_MS)


def test_after_a_dropped_connection_the_list_catches_up_and_says_it_was_offline(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    """The gateway goes away under the page; meanwhile a visitor files a ticket through the
    widget (intake, not the gateway). The page says it is offline, reconnects by itself when
    the gateway is back, and shows the ticket without a reload, once."""
    assistant_id = f"asst-{uuid4().hex[:10]}"
    key = api.put(
        f"/api/v1/assistants/{assistant_id}/ticket-settings",
        {"ticket_creation_enabled": True, "require_contact_info": False},
    )["widget_key"]
    sign_in(page, system, owner)
    badge = page.get_by_role("status").filter(has_text=re.compile("Live|Offline"))
    expect(badge).to_have_text("Live")
    words = f"Filed while the dashboard was away {uuid4().hex[:6]}"
    system.running.stop("gateway")
    try:
        expect(badge).to_contain_text("Offline")
        filed = httpx.post(
            f"{system.widget}/widget/v1/ticket-requests",
            headers={"X-Widget-Key": key},
            json={
                "request_id": f"req-{uuid4().hex}",
                "assistant_id": assistant_id,
                "conversation": {
                    "id": f"conv-{uuid4().hex[:12]}",
                    "messages": [
                        {"role": "visitor", "text": words, "sent_at": "2026-12-06T01:00:00Z"}
                    ],
                },
            },
            timeout=15.0,
        )
        assert filed.status_code == 202, filed.text
    finally:
        system.running.start_service("gateway")
    expect(badge).to_have_text("Live", timeout=30_000)
    expect(page.get_by_role("link", name=words)).to_have_count(1, timeout=30_000)


def test_a_stream_the_gateway_refuses_is_opened_again_and_the_list_catches_up(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    """A gateway that answers the stream with 503 (it waits for its broker, as just after it
    starts) ends the browser's EventSource for good, where a dropped connection would be
    retried. The page says it is offline, opens a new stream after the Retry-After, and
    shows what was made meanwhile without a reload."""
    refused: list[str] = []

    def refuse(route: Route) -> None:
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "5", "Content-Type": "application/problem+json"},
            body='{"code": "stream_unavailable"}',
        )

    page.route("**/api/v1/stream?*", refuse)
    sign_in(page, system, owner)
    badge = page.get_by_role("status").filter(has_text=re.compile("Live|Offline"))
    expect(badge).to_contain_text("Offline")
    subject = f"Made while the stream was refused {uuid4().hex[:6]}"
    api.post("/api/v1/tickets", {"subject": subject})
    page.unroute("**/api/v1/stream?*")
    expect(badge).to_have_text("Live", timeout=LIVE_MS)
    expect(page.get_by_role("link", name=subject)).to_have_count(1, timeout=LIVE_MS)
    assert refused


def test_a_guest_sees_no_control_that_changes_anything(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    ticket = api.post("/api/v1/tickets", {"subject": f"Look only {uuid4().hex[:6]}"})
    guest = hire(system, api, owner, "guest")
    sign_in(page, system, guest)
    expect(page.get_by_role("link", name=ticket["subject"])).to_be_visible()
    expect(page.get_by_role("button", name="New ticket")).to_have_count(0)
    expect(page.get_by_role("link", name="Members")).to_have_count(0)
    page.get_by_role("link", name=ticket["subject"]).click()
    expect(page.get_by_text("your role cannot change it")).to_be_visible()
    expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Add note")).to_have_count(0)
    expect(page.get_by_role("button", name="Link conversation")).to_have_count(0)
    expect(page.get_by_label("Subject", exact=True)).not_to_be_editable()
    for field in ("Status", "Priority", "Assignee"):
        expect(page.get_by_label(field, exact=True)).to_be_disabled()
    check_accessibility(page, "read-only ticket page")


def test_a_member_edits_only_the_tickets_assigned_to_them(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    member = hire(system, api, owner, "member")
    theirs = api.post(
        "/api/v1/tickets", {"subject": f"Theirs {uuid4().hex[:6]}", "assignee_id": member.member_id}
    )
    others = api.post("/api/v1/tickets", {"subject": f"Not theirs {uuid4().hex[:6]}"})
    sign_in(page, system, member)
    page.goto(f"{system.gateway}/tickets/{others['id']}")
    expect(page.get_by_text("your role cannot change it")).to_be_visible()
    expect(page.get_by_label("Status", exact=True)).to_be_disabled()
    page.goto(f"{system.gateway}/tickets/{theirs['id']}")
    expect(page.get_by_label("Subject", exact=True)).to_be_editable()
    expect(page.get_by_label("Assignee", exact=True)).to_be_disabled()
    # A member moves the status along the table, but never to closed or spam.
    expect(page.get_by_label("Status", exact=True)).to_have_value("new")
    offered = page.get_by_label("Status", exact=True).locator("option").all_inner_texts()
    assert offered == ["New", "Open", "In progress", "Waiting on customer", "Resolved"]
    page.get_by_label("Status", exact=True).select_option("open")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()


def test_a_stale_save_shows_what_changed_and_keeps_what_was_typed(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    ticket = api.post("/api/v1/tickets", {"subject": f"Contested {uuid4().hex[:6]}"})
    # This tab hears nothing live, as if its connection had dropped: its version goes stale.
    page.route("**/api/v1/stream**", lambda route: route.abort())
    sign_in(page, system, owner)
    page.goto(f"{system.gateway}/tickets/{ticket['id']}")
    page.get_by_label("Subject", exact=True).fill("My better subject")
    api.patch_ticket(ticket, priority="high")
    page.get_by_role("button", name="Save changes").click()
    conflict = page.locator(".conflict")
    expect(conflict).to_contain_text("Priority is now “High”")
    expect(page.get_by_label("Subject", exact=True)).to_have_value("My better subject")
    screenshot(page, "conflict")
    page.get_by_role("button", name="Load their changes and keep my edits").click()
    expect(page.get_by_label("Priority", exact=True)).to_have_value("high")
    expect(page.get_by_label("Subject", exact=True)).to_have_value("My better subject")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    saved = api.client.get(f"/api/v1/tickets/{ticket['id']}").json()
    assert (saved["subject"], saved["priority"]) == ("My better subject", "high")


def test_the_admin_pages_change_roles_and_widget_settings(
    page: Page, system: System, owner: Workspace, api: Api
) -> None:
    sign_in(page, system, owner)
    expect(page.locator("table.tickets tbody tr").first).to_be_visible()
    screenshot(page, "tickets")
    page.get_by_role("link", name="Members").click()
    email = f"new-{uuid4().hex[:6]}@acme.io"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status").filter(has_text=f"{email} was added")).to_be_visible()
    page.get_by_label(f"Role of {email}").select_option("admin")
    expect(page.get_by_role("status").filter(has_text=f"{email} is now admin")).to_be_visible()
    # The last owner is protected: the API's words are shown.
    owner_mail = owner_email(api, owner)
    page.get_by_label(f"Role of {owner_mail}").select_option("member")
    expect(page.get_by_role("alert")).to_contain_text("owner")
    check_accessibility(page, "members page")
    screenshot(page, "members")

    page.get_by_role("link", name="Assistants").click()
    assistant = f"asst-{uuid4().hex[:8]}"
    page.get_by_label("Assistant id").fill(assistant)
    page.get_by_role("button", name="Open settings").click()
    page.get_by_label("Visitors may create tickets from the widget").check()
    page.get_by_label("Require contact information").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    settings = api.client.get(f"/api/v1/assistants/{assistant}/ticket-settings").json()
    assert settings["ticket_creation_enabled"] is True
    assert settings["require_contact_info"] is True
    old_key = settings["widget_key"]
    expect(page.get_by_label("Embed snippet")).to_have_value(re.compile(old_key))
    page.get_by_role("button", name="Rotate widget key").click()
    expect(page.get_by_role("status").filter(has_text="A new widget key")).to_be_visible()
    expect(page.get_by_label("Embed snippet")).not_to_have_value(re.compile(old_key))
    # The saved assistant is in the workspace's list; coming back, one click opens it.
    yours = page.get_by_role("list", name="Your assistants")
    expect(yours).to_contain_text(f"{assistant} — tickets on, contact details required")
    check_accessibility(page, "assistants page")
    screenshot(page, "assistant-settings")
    page.get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="Assistants").click()
    yours.get_by_role("button", name=assistant).click()
    expect(page.get_by_role("heading", name=f"Settings of {assistant}")).to_be_visible()
