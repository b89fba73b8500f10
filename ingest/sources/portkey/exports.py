"""Portkey export jobs: count, split, start, poll, download and verify (docs/design.md).

`POST /logs/exports` creates a draft and tells how many logs it holds (`total`), so a window over
the export limit is bisected before anything is started; the draft of a window that was too big
is reused for the next count (`PUT` new filters) instead of piling up drafts. Then
`POST .../start`, poll `GET .../{id}`, and download: ask Portkey for a signed URL, then a plain
GET of that URL on object storage (another host: never with the Portkey key), streamed to disk.
The file must end with a whole record (an expired or refused URL is replaced by a new one at
once) and hold exactly `total` records; a short file is never returned: the window is split and
fetched again. Export ids go into URL paths percent-encoded (`http.segment`). A signed URL (and
every redirect from it) is fetched only over https or from PORTKEY_BASE_URL's host, and never
from a loopback, link-local or private address unless PORTKEY_BASE_URL is on one of that kind;
a download stops at `max_download_mib`, and its records are counted as it streams to disk.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ingest.convert.records import DOCS_NAMES, EXPORT_FIELDS
from ingest.errors import PortkeyExportError, Transient
from ingest.http import (
    Outcome,
    Service,
    Transport,
    address_kind,
    body_chunks,
    classify,
    public_url,
    retry_after_seconds,
    segment,
)

if TYPE_CHECKING:
    from ingest.http import Response
from ingest.sources.portkey.api import PortkeyApi
from ingest.sources.windows import Window, iso

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
DESCRIPTION_PREFIX = "portkey-phoenix-ingest"
STATUSES = ("draft", "in_progress", "success", "failed", "stopped")


@dataclass(frozen=True)
class WindowFile:
    window: Window
    path: Path  # the downloaded JSONL, complete
    total: int  # Portkey's count; == number of records (non-blank lines) in the file


_TAIL_CAP = 32 * 1024 * 1024  # the import's default line limit: a longer line is quarantined


class RecordCounter:
    """Counts the records (non-blank lines) of a download as its chunks stream to disk, in
    memory bounded by the chunk: only the unfinished last line is kept, and only up to
    `_TAIL_CAP` bytes, to check at the end that the file does not stop mid-record."""

    def __init__(self) -> None:
        self.lines = 0
        self._blank = True  # the current line has no content yet
        self._tail: bytearray | None = bytearray()  # None: longer than the cap

    def feed(self, chunk: bytes) -> None:
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            if not self._blank or piece.strip():
                self.lines += 1
            self._blank, self._tail = True, bytearray()
        if rest.strip():
            self._blank = False
        if self._tail is not None:
            self._tail += rest
            if len(self._tail) > _TAIL_CAP:
                self._tail = None

    def finish(self) -> tuple[int, bool]:
        """(records, complete): incomplete when the last line is cut mid-record. A last line
        over the cap is counted as a record: the import quarantines it as too long."""
        if self._blank:
            return self.lines, True
        if self._tail is not None:
            try:  # no final newline: complete only if the last line is a whole JSON value
                json.loads(bytes(self._tail))
            except ValueError:
                return self.lines + 1, False
        return self.lines + 1, True


class ExportJobs:
    """Export jobs for one thread: planning, job lifecycle, download of whole windows."""

    def __init__(self, api: PortkeyApi) -> None:
        self.settings, self._api, self.stats = api.settings, api, api.stats
        self._sleep, self._clock = api.sleep, api.clock
        # Signed URLs: a transport that never holds the key, so it may follow redirects.
        # Retried as a whole (a new signed URL, then the GET) up to max_download_attempts.
        storage = Service(
            name="object storage",
            base_url="",
            retry_deadline_s=self.settings.retry_deadline_s,
            request_timeout_s=self.settings.request_timeout_s,
            max_retry_after_s=self.settings.retry_deadline_s,
            follow_cross_host_redirects=True,
            check_url=self._check_signed_url,
        )
        self._storage = Transport(storage, sleep=api.sleep, clock=api.clock)
        self._spare: str | None = None  # a draft whose filters may be overwritten (PUT)
        # The spec's field names; the export docs' names if Portkey refuses those (a line in
        # either vocabulary is read the same way, convert/records.py).
        self._requested = list(EXPORT_FIELDS)

    # ---- export jobs: counting and planning

    def count(self, window: Window, draft_id: str | None = None) -> tuple[str, int]:
        """Create a draft for `window` (or PUT its filters into `draft_id`): (export id, total)."""
        try:
            return self._count(window, draft_id)
        except PortkeyExportError as exc:
            if not self._refuses_spec_names(exc):
                raise
            log.warning(
                "Portkey refused the spec's requested_data names (%s); asking with the export "
                "docs' names (%s)", exc, ", ".join(DOCS_NAMES.values()),
            )  # fmt: skip
            self._requested = [DOCS_NAMES.get(name, name) for name in EXPORT_FIELDS]
            return self._count(window, draft_id)

    def _refuses_spec_names(self, exc: PortkeyExportError) -> bool:
        """A 400 naming `requested_data` or one of the five names the docs spell otherwise."""
        if exc.status != 400 or self._requested != list(EXPORT_FIELDS):
            return False
        said = str(exc)
        return "requested_data" in said or any(name in said for name in DOCS_NAMES)

    def _count(self, window: Window, draft_id: str | None) -> tuple[str, int]:
        body: dict[str, Any] = {"filters": window.filters(), "requested_data": self._requested}
        if self.settings.workspace:
            body["workspace_id"] = self.settings.workspace
        if draft_id is not None:
            path = _export_path(draft_id)
            try:
                answer = self._api.call("PUT", path, body=body, export_id=draft_id)
            except PortkeyExportError as exc:
                if exc.status not in (400, 404, 409):
                    raise
                log.info(
                    "draft export %s cannot be reused (HTTP %s); creating a new one",
                    draft_id,
                    exc.status,
                )
            else:
                self.stats.drafts_reused += 1
                return draft_id, self._total(answer, f"PUT {path}", draft_id)
        body["description"] = f"{DESCRIPTION_PREFIX} {iso(window.since)}..{iso(window.until)}"
        answer = self._api.call("POST", "/logs/exports", body=body)
        export_id = answer.get("id")
        if not isinstance(export_id, str) or not export_id.strip():
            raise PortkeyExportError(
                "Portkey's answer to POST /logs/exports has no export id "
                f"(got keys {sorted(answer)})."
            )
        if not export_id.strip("."):  # `..` would name another path, quoted or not
            raise PortkeyExportError(
                f"Portkey's answer to POST /logs/exports gave the export id {export_id[:20]!r}, "
                "which cannot be used in a URL path. Nothing was started; report it to Portkey."
            )
        self.stats.drafts_created += 1
        return export_id, self._total(answer, "POST /logs/exports", export_id)

    def plan(self, window: Window) -> list[tuple[Window, str, int]]:
        """Sub-windows of `window` in time order, each with a draft and a total within the
        export limit; no job is started. A window with total 0 needs no job: its draft is kept
        for the next count, so its id may appear again on a later entry."""
        return list(self._plan(window))

    def _plan(self, window: Window) -> Iterator[tuple[Window, str, int]]:
        todo = [window]
        while todo:
            current = todo.pop()
            export_id, total = self.count(current, self._take_spare())
            if total > self.settings.export_limit:
                self._spare = export_id
                why = (
                    f"it holds {total} logs, more than the export limit of "
                    f"{self.settings.export_limit}"
                )
                todo.extend(reversed(self._split(current, why, export_id)))
                continue
            if total == 0:
                self._spare = export_id  # nothing to run: the draft can count the next window
            yield current, export_id, total

    def _take_spare(self) -> str | None:
        spare, self._spare = self._spare, None
        return spare

    def _split(self, window: Window, why: str, export_id: str) -> tuple[Window, Window]:
        if not window.can_split():
            raise PortkeyExportError(
                f"window {window} cannot be split further: {why} (export {export_id}, "
                "POST /logs/exports), and it is shorter than 1 second. Portkey's time filter "
                "cannot narrow it; export this second some other way or raise the export limit."
            )
        log.info("splitting window %s: %s", window, why)
        self.stats.splits += 1
        return window.halves()

    # ---- export jobs: running and downloading

    def windows(self, window: Window, dest_dir: Path) -> Iterator[WindowFile]:
        """Complete files covering `window`, in time order (several when it had to be split)."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        for current, export_id, total in self._plan(window):
            result = self._fetch_planned(current, export_id, total, dest_dir)
            if isinstance(result, WindowFile):
                yield result
                continue
            for half in self._split(current, result, export_id):
                yield from self.windows(half, dest_dir)

    def _fetch_planned(
        self, window: Window, export_id: str, total: int, dest_dir: Path
    ) -> WindowFile | str:
        """The window's file, or why the window must be split and fetched again."""
        path = dest_dir / window.file_name()
        if total == 0:
            path.write_bytes(b"")
            return WindowFile(window, path, 0)
        ran = self._run_job(window, export_id, total)
        if isinstance(ran, str):
            return ran
        export_id, total = ran
        lines = self.download(export_id, path)
        self.stats.downloads += 1
        if lines == total:
            self.stats.logs_fetched += total
            return WindowFile(window, path, total)
        path.unlink(missing_ok=True)  # never hand out a short (or overfull) window
        why = f"export {export_id} delivered {lines} records but Portkey counted {total}"
        log.warning("window %s: %s; splitting it and fetching again", window, why)
        return why

    def _run_job(self, window: Window, export_id: str, total: int) -> tuple[str, int] | str:
        """Start the job and wait for success, restarting failed/stopped runs a few times."""
        restarts = 0
        while True:
            self._start(export_id)
            status = self._await(export_id)
            if status == "success":
                return export_id, total
            if restarts >= self.settings.max_job_restarts:
                raise PortkeyExportError(
                    f"export {export_id} for window {window} ended {status} after "
                    f"{restarts} restart(s) (POST {_export_path(export_id, '/start')}, then GET "
                    f"{_export_path(export_id)}). Look at it in Portkey (Logs > Exports) and "
                    "rerun; nothing of this window was committed."
                )
            restarts += 1
            self.stats.job_restarts += 1
            log.warning(
                "export %s for window %s ended %s; restarting (%d of %d)",
                export_id,
                window,
                status,
                restarts,
                self.settings.max_job_restarts,
            )
            if status == "stopped":  # a stopped export cannot be started again: a fresh draft
                export_id, total = self.count(window, self._take_spare())
                if total > self.settings.export_limit:
                    return f"it now holds {total} logs, more than the export limit"

    def _start(self, export_id: str) -> None:
        path = _export_path(export_id, "/start")
        try:
            self._api.call("POST", path, export_id=export_id)
        except PortkeyExportError as exc:
            # A retried start whose first attempt took effect is refused (400): fine if it runs.
            if exc.status != 400:
                raise
            status = self._api.call("GET", _export_path(export_id), export_id=export_id)
            if status.get("status") not in ("in_progress", "success"):
                raise
        self.stats.jobs_started += 1

    def _await(self, export_id: str) -> str:
        """Poll until the job ends; its final status (success, failed or stopped)."""
        path = _export_path(export_id)
        started = self._clock()
        while True:
            status = self._api.call("GET", path, export_id=export_id).get("status")
            if status in ("success", "failed", "stopped"):
                return status
            if status not in ("draft", "in_progress"):
                shown = repr(status)[:60]
                raise PortkeyExportError(
                    f"Portkey reported status {shown} for export {export_id} (GET {path}); "
                    f"known values are {', '.join(STATUSES)}. Portkey's API may have changed: "
                    "nothing of this window was committed; rerun later or report it.",
                    code=str(status)[:60],
                )
            waited = self._clock() - started
            if waited >= self.settings.job_timeout_s:
                raise PortkeyExportError(
                    f"export {export_id} is still {status} after {waited:.0f} s (GET {path}); "
                    f"gave up after job_timeout_s={self.settings.job_timeout_s:g}. Portkey may "
                    "be busy: rerun later."
                )
            self._sleep(self.settings.poll_interval_s)

    def _total(self, answer: Mapping[str, Any], endpoint: str, export_id: str) -> int:
        total = answer.get("total")
        if isinstance(total, float) and total.is_integer():
            total = int(total)
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise PortkeyExportError(
                f"Portkey's answer to {endpoint} for export {export_id} "
                f"has no usable total (got {str(total)[:40]!r})."
            )
        return total

    # ---- downloads

    def download(self, export_id: str, path: Path) -> int:
        """Fetch the export into `path` (via `path.part`); its number of records. An attempt
        that fails asks for a new signed URL: at once when storage refused the URL (expired),
        after the transport's backoff otherwise."""
        part = path.with_name(path.name + ".part")
        attempts = self.settings.max_download_attempts

        def on_retry(exc: Transient, wait: float) -> None:
            log.warning("download of export %s failed (%s); asking for a new URL", export_id, exc)

        try:
            lines = self._storage.retrying(
                lambda: self._fetch_file(export_id, part), on_retry=on_retry, max_attempts=attempts
            )
            part.replace(path)
        except Transient as exc:
            raise PortkeyExportError(
                f"could not download export {export_id} "
                f"(GET {_export_path(export_id, '/download')} and its signed URL) in "
                f"{attempts} attempts; last problem: {exc}. Nothing of this window was "
                "committed; rerun later."
            ) from None
        finally:
            part.unlink(missing_ok=True)  # gone already unless the download failed
        return lines

    def _fetch_file(self, export_id: str, part: Path) -> int:
        path = _export_path(export_id, "/download")
        answer = self._api.call("GET", path, export_id=export_id)
        url = answer.get("signed_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PortkeyExportError(
                f"Portkey's answer to GET {path} has no usable "
                f"signed_url (got keys {sorted(answer)})."
            )
        where = public_url(url)
        log.info("downloading export %s from %s", export_id, where)
        limit = self.settings.max_download_mib * 1024 * 1024
        counter = RecordCounter()
        size = 0
        refusal: Transient | None = None
        try:
            # No Portkey key here: the URL carries its own signature, on another host.
            response = self._storage.send("GET", url, stream=True)
            with response:
                if response.status_code != 200:
                    refusal = self._storage_refusal(response, where)
                else:
                    with part.open("wb") as out:
                        for chunk in body_chunks(response, _CHUNK):
                            size += len(chunk)
                            if size > limit:
                                break
                            out.write(chunk)
                            counter.feed(chunk)
        except Transient as exc:
            raise Transient(f"the download from {where} broke off ({exc})") from None
        if refusal is not None:
            raise refusal
        if size > limit:
            raise PortkeyExportError(
                f"export {export_id} from {where} is larger than max_download_mib "
                f"({self.settings.max_download_mib:,} MiB): the download was stopped and nothing "
                "of this window was committed. Use a shorter --window, or raise "
                "--max-download-mib if the export really is that big."
            )
        lines, complete = counter.finish()
        if not complete:
            raise Transient(f"the file from {where} ends in the middle of a record (truncated)")
        return lines

    def _check_signed_url(self, url: str) -> None:
        """A signed URL, or a redirect from one, is fetched only over https or from
        PORTKEY_BASE_URL's host, and never from a loopback, link-local or private address
        unless PORTKEY_BASE_URL is on an address of that kind (a self-hosted Portkey)."""
        parts, base = urlsplit(url), urlsplit(self.settings.base_url)
        host, base_host = (parts.hostname or "").lower(), (base.hostname or "").lower()
        rule = (
            "signed URLs are fetched over https or from PORTKEY_BASE_URL's host, and never from "
            "loopback, link-local or private addresses unless PORTKEY_BASE_URL is on one"
        )
        if parts.scheme != "https" and host != base_host:
            raise PortkeyExportError(
                f"refused to download {public_url(url)}: a plain {parts.scheme} URL on another "
                f"host than PORTKEY_BASE_URL ({rule}). Nothing of this window was committed."
            )
        kind = address_kind(host)
        if kind is not None and kind != address_kind(base_host):
            raise PortkeyExportError(
                f"refused to download {public_url(url)}: {host} is a {kind} address ({rule}). "
                "Nothing of this window was committed."
            )

    @staticmethod
    def _storage_refusal(response: Response, where: str) -> Transient:
        """Object storage's (S3/Azure/GCS) answer -> what to do: 4xx (e.g. an expired URL)
        asks for a new URL at once, 408/429/5xx after a wait."""
        status = response.status_code
        head = next(body_chunks(response, 4096), b"").decode("utf-8", "replace")
        found = [re.search(rf"<{tag}>([^<]{{0,200}})</{tag}>", head) for tag in ("Code", "Message")]
        detail = ": ".join(m.group(1) for m in found if m)
        reason = f"{where} answered HTTP {status}" + (f" ({detail})" if detail else "")
        if classify(status) is not Outcome.RETRY:
            return Transient(reason, status, retry_after=0.0)
        return Transient(
            reason, status, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
        )


def _export_path(export_id: str, tail: str = "") -> str:
    """The API path of one export: its id (from Portkey's answers) as one quoted segment."""
    return f"/logs/exports/{segment(export_id)}{tail}"
