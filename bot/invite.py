"""The link that adds paperwatch to a server, with exactly the permissions it uses."""

from __future__ import annotations

from urllib.parse import urlencode

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
SEND_MESSAGES_IN_THREADS = 1 << 38

BOT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | SEND_MESSAGES_IN_THREADS | READ_MESSAGE_HISTORY
"""See channels, post digests and alerts as embeds, also in threads, and read back its own
posts after an outage so that none is posted twice. Nothing else."""


def invite_url(application_id: int, permissions: int = BOT_PERMISSIONS) -> str:
    query = urlencode(
        {
            "client_id": str(application_id),
            "permissions": str(permissions),
            "scope": "bot applications.commands",
        }
    )
    return f"https://discord.com/oauth2/authorize?{query}"
