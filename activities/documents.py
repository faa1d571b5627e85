"""Reads the files an email attaches (T8, A2) from the document store, only when the message is built."""

from __future__ import annotations

import mimetypes
from dataclasses import replace
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from printroom.activities.compose import FilePart
from printroom.models import Order
from printroom.settings import AttachmentKind, DocumentSettings

MB = 1_000_000
KIND_LABELS: dict[str, str] = {"document": "final document", "ticket": "job ticket", "preflight_report": "preflight report"}


class AttachmentError(Exception):
    """A file that cannot be attached. Missing or too big: a person can fix it and the retry then succeeds.
    `permanent`: the order names a file outside the document store, which no retry will ever read."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.uncertain = False  # nothing reached the SMTP server


def content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class DocumentStore:
    """The configured root, and the limits on what one email may carry."""

    def __init__(self, settings: DocumentSettings) -> None:
        self.root = settings.root.resolve() if settings.root else None
        self.max_file_bytes = int(settings.max_file_mb * MB)
        self.max_total_bytes = int(settings.max_total_mb * MB)
        self._limits = f"documents.max_file_mb = {settings.max_file_mb:g}", f"documents.max_total_mb = {settings.max_total_mb:g}"

    def resolve(self, reference: str) -> Path:
        """The file a reference names; refused when it leads outside the store (`..`, absolute, a symlink)."""
        if self.root is None:
            raise AttachmentError(f"{reference}: no document store is configured; set documents.root in the settings")
        path = (self.root / reference).resolve()
        if not path.is_relative_to(self.root):
            raise AttachmentError(f"{reference}: leads outside the document store {self.root}; refused", permanent=True)
        return path

    def read(self, reference: str, what: str, name: str) -> FilePart:
        path = self.resolve(reference)
        try:
            size = path.stat().st_size
            if size > self.max_file_bytes:
                raise AttachmentError(
                    f"{what} {reference} is {size / MB:.1f} MB, over the limit {self._limits[0]}; "
                    "make it smaller or raise the limit"
                )
            with path.open("rb") as file:
                data = file.read(self.max_file_bytes + 1)
            if len(data) > self.max_file_bytes:  # it grew since stat()
                raise AttachmentError(f"{what} {reference} is over the limit {self._limits[0]}; make it smaller or raise the limit")
        except FileNotFoundError:
            raise AttachmentError(f"{what} {reference} is not in the document store {self.root}; put it there") from None
        except IsADirectoryError:
            raise AttachmentError(f"{what} {reference} is a directory in {self.root}, not a file") from None
        except PermissionError:
            raise AttachmentError(f"{what} {reference}: the worker may not read it (permissions)") from None
        return FilePart(name=name, filename=path.name, content_type=content_type(path.name), data=data)

    def references(self, order: Order, kinds: Iterable[AttachmentKind]) -> list[str]:
        """The files of each job that the attachment kinds name, in job order (a job without one has none)."""
        wanted = list(kinds)
        return [ref for job in order.jobs for kind in wanted if (ref := getattr(job, kind))]

    def attachments(self, order: Order, kinds: Iterable[AttachmentKind]) -> list[FilePart]:
        """The files of each job that the template's attachment kinds name, in job order. Two files of the same
        name get their job's id first."""
        wanted = list(kinds)
        parts = [
            self.read(ref, f"the {KIND_LABELS[kind]} of job {job.id}:", name=job.id)
            for job in order.jobs
            for kind in wanted
            if (ref := getattr(job, kind))
        ]
        return self._bundle(parts, f"the attachments of order {order.id}")

    def files(self, references: Iterable[str]) -> list[FilePart]:
        """Files an operator chose for a draft (A1), by their references in the store."""
        parts = [self.read(ref, "the file", name=PurePosixPath(ref).parent.name or "file") for ref in references]
        return self._bundle(parts, "the attachments")

    def _bundle(self, parts: list[FilePart], what: str) -> list[FilePart]:
        total = sum(len(p.data) for p in parts)
        if total > self.max_total_bytes:
            raise AttachmentError(f"{what} come to {total / MB:.1f} MB, over the limit {self._limits[1]}")
        names = [p.filename for p in parts]
        return [replace(p, filename=f"{p.name}-{p.filename}") if names.count(p.filename) > 1 else p for p in parts]
