"""intake: turns widget conversations into ticket requests for ticket-core.

Same layout as every service (domain/, handlers, store/, entrypoints/). This first version
is the running frame: its own database with outbox and inbox, migrations, health and
readiness; the widget API and its rules are built on it (issue 5).
"""
