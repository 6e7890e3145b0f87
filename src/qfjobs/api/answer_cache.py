"""Job-list answers kept in memory for as long as they stay true.

Clients poll ``GET jobs/?project_id=...`` with the same query again and
again. Each answer is kept with the project's job version
(:class:`~qfjobs.models.JobVersion`), read *before* the page. The triggers
renew that version with every change to the project's jobs, whoever makes
it. While the version reads the same, the kept answer is the answer, and a
request costs the token check and one primary-key read, not argument
parsing, the page query, JSON and page links. An answer kept after a change
it may not show carries the old version, so it is never served again.

An answer is kept per token and per exact request: URL (scheme, host, path,
query string) and whether the caller is the QFieldCloud client (bare-array
bodies). Only answers of 200 are kept. Every request still checks its token,
in the same query that reads the version, and that query also re-checks
that the token's user may read the project: a logout or lost access ends
hits at once.

Each process keeps its own answers, the least recently used dropped past
``QFJOBS_ANSWER_CACHE_BYTES`` (16 MiB by default; 0 turns the cache off).
Lists of every readable project (no ``project_id``) are not kept: their
version would have to cover all of them.
"""

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.datastructures import Headers

from qfjobs.api.auth_context import (
    accept_identity,
    checks_token_itself,
    current_identity,
    required_token,
)
from qfjobs.api.pagination import is_qfieldcloud_sdk
from qfjobs.extensions import get_db
from qfjobs.services import job_listing, users

#: The request parts an answer depends on besides the caller.
_URL_PARTS = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
)

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    project_id: uuid.UUID
    version: int
    body: bytes
    headers: Headers

    @property
    def size(self) -> int:
        """Roughly what the answer holds in memory, in bytes."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 400


class AnswerCache:
    """A bounded least-recently-used store of answers, safe across threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._answers: OrderedDict[Key, KeptAnswer] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Answers served from memory, and lists that had to be read.
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> KeptAnswer | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: Key, answer: KeptAnswer) -> None:
        if answer.size > self.max_bytes:
            return
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._answers[key] = answer
            self._bytes += answer.size
            while self._bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= dropped.size

    def __len__(self) -> int:
        return len(self._answers)


def init_app(app: Flask) -> None:
    app.extensions["qfjobs.answer_cache"] = AnswerCache(
        app.config["QFJOBS_ANSWER_CACHE_BYTES"]
    )


def _requested_project() -> uuid.UUID | None:
    """The one ``project_id`` asked for, else None (the view then decides)."""
    given = request.args.getlist("project_id")
    if len(given) != 1:
        return None
    try:
        return uuid.UUID(given[0])
    except ValueError:
        return None


def kept_by_job_version(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve a job list from the cache while its project's version holds.

    Put it above the view's flask-smorest decorators: a hit is answered before
    the arguments are parsed. The token is checked here, in the same query as
    the version. Anything the cache cannot vouch for (no ``project_id``, a
    project the caller may not read, an error answer) goes to the view.
    """

    @wraps(view)
    def serve(*args: Any, **kwargs: Any) -> Any:
        cache: AnswerCache = current_app.extensions["qfjobs.answer_cache"]
        token = required_token()
        key = (
            users.token_hash(token),
            is_qfieldcloud_sdk(),
            *(request.environ.get(part) for part in _URL_PARTS),
        )
        kept = cache.get(key) if cache.max_bytes else None
        project_id = kept.project_id if kept is not None else _requested_project()
        if project_id is None:
            current_identity()
            return view(*args, **kwargs)

        identity, version = get_db().first_read(
            lambda connection: job_listing.identity_and_jobs_version(
                connection, token, project_id
            )
        )
        accept_identity(identity)
        if kept is not None and kept.version == version:
            cache.hits += 1
            return Response(kept.body, 200, kept.headers.copy())

        cache.misses += 1
        response = view(*args, **kwargs)
        if version is not None and cache.max_bytes and response.status_code == 200:
            answer = KeptAnswer(
                project_id, version, response.get_data(), Headers(response.headers)
            )
            cache.put(key, answer)
        return response

    return checks_token_itself(serve)
