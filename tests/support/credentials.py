"""Secrets for systems that tests start: strong and random, as production needs them, so no
test depends on the development mode that accepts the built-in ones."""

import secrets


def strong_secrets() -> dict[str, str]:
    """`HELPDESK_JWT_SECRET` and `HELPDESK_INTERNAL_SECRETS`, each 64 random characters."""
    return {
        "HELPDESK_JWT_SECRET": secrets.token_urlsafe(48),
        "HELPDESK_INTERNAL_SECRETS": secrets.token_urlsafe(48),
    }
