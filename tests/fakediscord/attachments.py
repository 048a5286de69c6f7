"""Attachments: the bytes of every file, served back like Discord's CDN, and files users attach.

Files the bot uploads (``multipart/form-data``: ``payload_json`` plus ``files[n]`` parts, on
messages, interaction responses and follow-ups) are kept with their bytes; the attachment
objects Discord answers carry a ``url`` on the fake's own server, so ``Attachment.read()``
in discord.py downloads exactly what was uploaded.

A user attaching a file to a slash command option of type ATTACHMENT (11) is an
:class:`Upload` passed as the option's value (or an :class:`UploadedFile` the bot posted
earlier, e.g. an export to import back); the interaction carries its id as the value and
the attachment object in ``data.resolved.attachments``, whose ``url`` serves its bytes.

Tests can take a file away (:meth:`AttachmentStore.expire`, then downloads answer 404, as
an expired CDN link does) and see what was downloaded (:attr:`AttachmentStore.downloads`).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web

from .model import JSON, UploadedFile

ROUTE = "/{kind:attachments|ephemeral-attachments}/{owner_id:\\d+}/{attachment_id:\\d+}/{filename}"
"""Where the fake serves attachment bytes (below its base url, beside ``/api/v10``)."""


@dataclass(frozen=True)
class Upload:
    """A file a user attaches to a slash command option."""

    filename: str
    data: bytes = field(repr=False)
    content_type: str | None = None
    """Default: guessed from the filename, ``application/octet-stream`` if unknown."""

    @property
    def media_type(self) -> str:
        if self.content_type:
            return self.content_type
        guessed, _ = mimetypes.guess_type(self.filename)
        return guessed or "application/octet-stream"


@dataclass
class StoredAttachment:
    id: int
    owner_id: int
    """The channel (message attachments) or the application (a user's ephemeral upload)."""
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    ephemeral: bool = False
    expired: bool = False

    @property
    def path(self) -> str:
        kind = "ephemeral-attachments" if self.ephemeral else "attachments"
        return f"/{kind}/{self.owner_id}/{self.id}/{quote(self.filename)}"


class AttachmentStore:
    """Every attachment's bytes by id, and the HTTP handler that serves them."""

    def __init__(self, base_url: Callable[[], str], new_id: Callable[[], int]) -> None:
        self._base_url = base_url
        self._new_id = new_id
        self.files: dict[int, StoredAttachment] = {}
        self.downloads: list[int] = []
        """Ids of the attachments downloaded, in order (a 404 is not counted)."""

    def add(
        self, owner_id: int, filename: str, content_type: str, data: bytes, *, ephemeral: bool = False
    ) -> StoredAttachment:
        stored = StoredAttachment(self._new_id(), owner_id, filename, content_type, data, ephemeral)
        self.files[stored.id] = stored
        return stored

    def payload(self, stored: StoredAttachment) -> JSON:
        """The attachment object as Discord's API shows it."""
        url = self._base_url() + stored.path
        data: JSON = {
            "id": str(stored.id),
            "filename": stored.filename,
            "size": len(stored.data),
            "url": url,
            "proxy_url": url,
            "content_type": stored.content_type,
        }
        if stored.ephemeral:
            data["ephemeral"] = True
        return data

    def message_attachments(self, channel_id: int, files: list[UploadedFile]) -> list[JSON]:
        """Store the files of one message; their attachment objects, in order."""
        return [
            self.payload(self.add(channel_id, upload.filename, upload.content_type, upload.data))
            for upload in files
        ]

    def option_attachment(self, application_id: int, raw: object) -> JSON:
        """A user's file for an ATTACHMENT option: stored, and its (ephemeral) attachment object."""
        if isinstance(raw, Upload):
            filename, content_type, data = raw.filename, raw.media_type, raw.data
        elif isinstance(raw, UploadedFile):
            filename, content_type, data = raw.filename, raw.content_type, raw.data
        else:
            raise TypeError(f"an attachment option takes an Upload or an UploadedFile, got {raw!r}")
        return self.payload(self.add(application_id, filename, content_type, data, ephemeral=True))

    def data(self, attachment_id: int) -> bytes:
        return self.files[attachment_id].data

    def expire(self, attachment_id: int) -> None:
        """The attachment's url answers 404 from now on."""
        self.files[attachment_id].expired = True

    async def handle(self, request: web.Request) -> web.Response:
        stored = self.files.get(int(request.match_info["attachment_id"]))
        if (
            stored is None
            or stored.expired
            or str(stored.owner_id) != request.match_info["owner_id"]
            or stored.filename != request.match_info["filename"]
            or stored.ephemeral != (request.match_info["kind"] == "ephemeral-attachments")
        ):
            return web.Response(status=404, text="This content is no longer available.")
        self.downloads.append(stored.id)
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})
