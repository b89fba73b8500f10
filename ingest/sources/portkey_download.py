"""Download a finished export: ask Portkey for a signed URL, then a plain GET of that URL on
object storage (another host: never with the Portkey key). The file is streamed to disk and
must end with a whole record; an expired or refused URL is replaced by a new one at once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ingest.errors import PortkeyExportError
from ingest.http import (
    Outcome,
    Response,
    Service,
    Transient,
    Transport,
    body_chunks,
    classify,
    public_url,
    retry_after_seconds,
)
from ingest.sources.portkey_api import PortkeyApi
from ingest.sources.portkey_settings import PortkeySettings

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class _DownloadProblem(Exception):
    """One download attempt failed; `backoff` False means ask for a new URL at once."""

    def __init__(self, reason: str, backoff: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.backoff, self.retry_after = backoff, retry_after


def _scan(path: Path) -> tuple[int, bool]:
    """(non-blank lines, complete): incomplete when the last line is cut mid-record."""
    lines, last = 0, b""
    with path.open("rb") as stream:
        for raw in stream:  # one line in memory at a time
            if raw.strip():
                lines += 1
            last = raw
    if not last.strip() or last.endswith(b"\n"):
        return lines, True
    try:  # no final newline: complete only if the last line is a whole JSON value
        json.loads(last)
    except ValueError:
        return lines, False
    return lines, True


class ExportDownloader:
    """Fetches finished exports into files; `download` retries with a new signed URL."""

    def __init__(
        self,
        settings: PortkeySettings,
        api: PortkeyApi,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings, self._api, self._sleep = settings, api, sleep
        # Signed URLs: a transport that never holds the key, so it may follow redirects.
        storage = Service(
            name="object storage",
            base_url="",
            request_timeout_s=settings.request_timeout_s,
            follow_cross_host_redirects=True,
        )
        self._storage = Transport(storage, sleep=sleep)

    def download(self, export_id: str, path: Path) -> int:
        """Fetch the export into `path` (via `path.part`); its number of records."""
        part = path.with_name(path.name + ".part")
        attempts = self.settings.max_download_attempts
        backoff = wait_random_exponential(multiplier=0.5, max=30)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _DownloadProblem) and not exc.backoff:
                return 0.0  # expired or refused URL: ask for a new one at once
            if isinstance(exc, _DownloadProblem) and exc.retry_after is not None:
                return min(exc.retry_after, self.settings.retry_deadline_s)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "download of export %s failed (%s); asking for a new URL (attempt %d of %d)",
                export_id,
                exc,
                state.attempt_number + 1,
                attempts,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(_DownloadProblem),
            stop=stop_after_attempt(attempts),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            lines = retrying(lambda: self._fetch_file(export_id, part))
            part.replace(path)
        except _DownloadProblem as exc:
            raise PortkeyExportError(
                f"could not download export {export_id} (GET /logs/exports/{export_id}/download "
                f"and its signed URL) in {attempts} attempts; last problem: {exc}. Nothing of "
                "this window was committed; rerun later."
            ) from None
        finally:
            part.unlink(missing_ok=True)  # gone already unless the download failed
        return lines

    def _fetch_file(self, export_id: str, part: Path) -> int:
        answer = self._api.call("GET", f"/logs/exports/{export_id}/download", export_id=export_id)
        url = answer.get("signed_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PortkeyExportError(
                f"Portkey's answer to GET /logs/exports/{export_id}/download has no usable "
                f"signed_url (got keys {sorted(answer)})."
            )
        where = public_url(url)
        log.info("downloading export %s from %s", export_id, where)
        try:
            # No Portkey key here: the URL carries its own signature, on another host.
            response = self._storage.send("GET", url, stream=True)
            with response:
                if response.status_code != 200:
                    raise self._storage_refusal(response, where)
                with part.open("wb") as out:
                    for chunk in body_chunks(response, _CHUNK):
                        out.write(chunk)
        except Transient as exc:
            if str(exc).startswith("no answer within"):
                raise _DownloadProblem(
                    f"{where} did not answer within {self.settings.request_timeout_s:g} s", True
                ) from None
            raise _DownloadProblem(f"the download from {where} broke off ({exc})", True) from None
        lines, complete = _scan(part)
        if not complete:
            raise _DownloadProblem(
                f"the file from {where} ends in the middle of a record (truncated)", True
            )
        return lines

    @staticmethod
    def _storage_refusal(response: Response, where: str) -> _DownloadProblem:
        """S3/Azure/GCS error answer -> a problem; 4xx (e.g. expired) asks for a new URL."""
        status = response.status_code
        head = next(body_chunks(response, 4096), b"").decode("utf-8", "replace")
        found = [re.search(rf"<{tag}>([^<]{{0,200}})</{tag}>", head) for tag in ("Code", "Message")]
        detail = ": ".join(m.group(1) for m in found if m)
        reason = f"{where} answered HTTP {status}" + (f" ({detail})" if detail else "")
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return _DownloadProblem(reason, classify(status) is Outcome.RETRY, retry_after)
