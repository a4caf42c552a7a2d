"""The metrics backend interface and the HTTP client both backends share.

Aetos serves the read part of Prometheus's HTTP API (GET ``/api/v1/query``,
``/series``, ``/labels``, ``/label/<name>/values``), so one client talks to
both; a backend subclass only says where the server is (``_base_url``), which
headers authenticate a request (``_headers``), what to do once on 401
(``_reauthenticate``) and how to explain a refused request (``_explain``).

Results are typed (:class:`QueryResult`) for the four result types of an
instant query; a sample whose value is 0.0 is a value, never "no data".
Every failure is a :class:`~daemon.exception.DatasourceError` whose message says
what to fix.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import math
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
from oslo_log import log

from daemon.exception import DatasourceError

__all__ = [
    "Datasource",
    "QueryRejected",
    "QueryResult",
    "RangeSeries",
    "Sample",
    "make_ssl_context",
]

LOG = log.getLogger(__name__)

#: Largest answer read from a backend, in bytes.
MAX_BODY = 32 * 1024 * 1024


class QueryRejected(DatasourceError):
    """The backend answered, and refused the query itself (HTTP 400 or 422).

    Asking another backend, or the same one later, gives the same answer:
    this is no sign the backend is down.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One value at one time: an element of a vector, or a scalar (no labels).

    :ivar labels: the series labels (empty for a scalar)
    :ivar timestamp: seconds since the epoch
    :ivar value: the value; NaN and infinities are kept as floats
    """

    labels: Mapping[str, str]
    timestamp: float
    value: float

    def json_value(self) -> float | str:
        """The value for a JSON event: a float, or "NaN"/"+Inf"/"-Inf" as text."""
        if math.isnan(self.value):
            return "NaN"
        if math.isinf(self.value):
            return "+Inf" if self.value > 0 else "-Inf"
        return self.value


@dataclasses.dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a matrix result: labels and (timestamp, value) pairs."""

    labels: Mapping[str, str]
    values: tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class QueryResult:
    """The answer to an instant query.

    Exactly one of the fields after ``result_type`` is meaningful:
    ``vector`` for ``vector``, ``scalar`` for ``scalar``, ``matrix`` for
    ``matrix`` (a range-vector selector such as ``up[5m]``), ``string`` for
    ``string``.

    :ivar result_type: vector, scalar, matrix or string
    """

    result_type: str
    vector: tuple[Sample, ...] = ()
    scalar: Sample | None = None
    matrix: tuple[RangeSeries, ...] = ()
    string: str | None = None

    @property
    def empty(self) -> bool:
        """True when the query found no data (a 0.0 sample is data)."""
        if self.result_type == "vector":
            return not self.vector
        if self.result_type == "matrix":
            return not self.matrix
        if self.result_type == "scalar":
            return self.scalar is None
        return self.string is None

    def json_value(self) -> Any:
        """A JSON-ready form for an event's ``metrics``.

        A scalar or a one-sample vector gives its value; a longer vector a
        list of ``{"labels": ..., "value": ...}``; a matrix a list of
        ``{"labels": ..., "values": [[t, v], ...]}``; a string its text; no
        data gives None.
        """
        if self.result_type == "scalar":
            return self.scalar.json_value() if self.scalar else None
        if self.result_type == "string":
            return self.string
        if self.result_type == "matrix":
            return [{"labels": dict(s.labels),
                     "values": [[t, Sample({}, t, v).json_value()] for t, v in s.values]}
                    for s in self.matrix]
        if not self.vector:
            return None
        if len(self.vector) == 1:
            return self.vector[0].json_value()
        return [{"labels": dict(s.labels), "value": s.json_value()} for s in self.vector]

    @classmethod
    def parse(cls, data: Any) -> QueryResult:
        """Build a result from the ``data`` member of a query answer.

        :raises ValueError: when ``data`` is not a valid query result
        """
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "vector":
            return cls("vector", vector=tuple(
                Sample(dict(item.get("metric") or {}), *_point(item["value"]))
                for item in _as_list(result)))
        if kind == "scalar":
            return cls("scalar", scalar=Sample({}, *_point(result)))
        if kind == "string":
            if not isinstance(result, list) or len(result) != 2:
                raise ValueError("string result is not [time, text]")
            return cls("string", string=str(result[1]))
        if kind == "matrix":
            return cls("matrix", matrix=tuple(
                RangeSeries(dict(item.get("metric") or {}),
                            tuple(_point(p) for p in item.get("values") or ()))
                for item in _as_list(result)))
        raise ValueError(f"unknown resultType {kind!r}")


def _as_list(value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError("result is not a list")
    return value


def _point(pair: Any) -> tuple[float, float]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(f"sample is not [time, value]: {pair!r}")
    return float(pair[0]), float(pair[1])


def make_ssl_context(*, cafile: str | None, certfile: str | None,
                     keyfile: str | None, insecure: bool,
                     what: str) -> ssl.SSLContext:
    """Build the TLS context of one backend; verification is on by default.

    :param what: the backend's name, for the warning logged when insecure
    """
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if insecure:
        LOG.warning("TLS verification of %s is turned off (insecure = True); "
                    "never do this in production.", what)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Datasource(abc.ABC):
    """One metrics server speaking the Prometheus HTTP API (instant queries only).

    Open with :meth:`start` (or ``async with``), close with :meth:`close`; one
    pooled ``aiohttp.ClientSession`` per backend, at most ``max_concurrency``
    requests in flight, each bounded by ``timeout`` seconds.
    """

    NAME: ClassVar[str]

    def __init__(self, *, timeout: float, max_concurrency: int = 8,
                 ssl_context: ssl.SSLContext | None = None,
                 fqdn_label: str = "fqdn",
                 instance_uuid_label: str = "resource") -> None:
        self.timeout = timeout
        self.fqdn_label = fqdn_label
        self.instance_uuid_label = instance_uuid_label
        self._max_concurrency = max_concurrency
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None

    # -- hooks ---------------------------------------------------------------

    @abc.abstractmethod
    async def _base_url(self) -> str:
        """The server's base URL (without ``/api/v1``).

        :raises DatasourceError: when it cannot be found
        """

    async def _headers(self) -> dict[str, str]:
        """Headers that authenticate a request."""
        return {}

    async def _reauthenticate(self) -> bool:
        """Called once after a 401; True when retrying may now succeed."""
        return False

    async def warm_up(self) -> None:
        """Fetch what the first request would (a token, the endpoint); may raise DatasourceError."""
        await self._base_url()
        await self._headers()

    async def filtered(self) -> str | None:
        """Why answers may be filtered (Aetos without admin role), or None.

        Never raises; used to explain an empty answer.
        """
        return None

    def _explain(self, status: int, detail: str, url: str) -> str:
        """The operator-facing problem for an HTTP error ``status``."""
        if status == 401:
            return (f"{url} answered 401 Unauthorized ({detail}) -- check the "
                    "credentials")
        if status == 403:
            return f"{url} answered 403 Forbidden ({detail}) -- check the credentials"
        return f"{url} answered HTTP {status}: {detail}"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session (call from the running loop, after any fork)."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._max_concurrency,
            ssl=self._ssl_context if self._ssl_context is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            raise_for_status=False)
        self._semaphore = asyncio.Semaphore(self._max_concurrency)

    async def close(self) -> None:
        """Close the HTTP session; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Datasource:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- API -------------------------------------------------------------------

    async def query(self, promql: str, *, time: float | None = None) -> QueryResult:
        """Run an instant query.

        :param promql: the query
        :param time: evaluation time (seconds since the epoch), default now
        :raises DatasourceError: on any failure
        """
        params = [("query", promql)]
        if time is not None:
            params.append(("time", repr(time)))
        data = await self._get("query", params)
        try:
            return QueryResult.parse(data)
        except (ValueError, KeyError, TypeError) as err:
            raise DatasourceError(backend=self.NAME,
                               problem=f"unexpected query answer: {err}") from err

    async def labels(self, match: Iterable[str] = ()) -> list[str]:
        """Return the label names, optionally of the series matching ``match``.

        :raises DatasourceError: on any failure
        """
        return self._strings(await self._get("labels", _matches(match)), "labels")

    async def label_values(self, name: str, match: Iterable[str] = ()) -> list[str]:
        """Return the values of label ``name``.

        :raises DatasourceError: on any failure
        """
        return self._strings(
            await self._get(f"label/{_label_path(name)}/values", _matches(match)),
            "label values")

    async def series(self, match: Sequence[str]) -> list[dict[str, str]]:
        """Return the label sets of the series matching any of ``match``.

        :raises DatasourceError: on any failure
        """
        data = await self._get("series", _matches(match))
        if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
            raise DatasourceError(backend=self.NAME, problem="unexpected series answer")
        return [dict(s) for s in data]

    # -- internals -------------------------------------------------------------

    def _strings(self, data: Any, what: str) -> list[str]:
        if not isinstance(data, list):
            raise DatasourceError(backend=self.NAME, problem=f"unexpected {what} answer")
        return [str(item) for item in data]

    async def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        if self._session is None or self._semaphore is None:
            raise DatasourceError(backend=self.NAME, problem="client not started")
        async with self._semaphore:
            for attempt in (1, 2):
                base = (await self._base_url()).rstrip("/")
                url = f"{base}/api/v1/{path}"
                headers = await self._headers()
                try:
                    async with self._session.get(url, params=params, headers=headers) as resp:
                        status = resp.status
                        body = await resp.content.read(MAX_BODY)
                except TimeoutError as err:
                    raise DatasourceError(
                        backend=self.NAME,
                        problem=(f"no answer from {url} within {self.timeout:g}s -- "
                                 "check that the server is up, or raise the timeout")
                    ) from err
                except aiohttp.ClientError as err:
                    raise DatasourceError(
                        backend=self.NAME,
                        problem=f"cannot reach {url}: {err} -- check the URL and "
                                "that the server is up") from err
                if status == 401 and attempt == 1 and await self._reauthenticate():
                    LOG.info("%s answered 401; re-authenticated, retrying once", url)
                    continue
                return self._parse(status, body, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _parse(self, status: int, body: bytes, url: str) -> Any:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if 200 <= status < 300:
            if isinstance(decoded, dict) and decoded.get("status") == "success":
                return decoded.get("data")
            detail = _error_detail(decoded, body)
            raise DatasourceError(backend=self.NAME,
                               problem=f"{url} gave an unexpected answer: {detail}")
        detail = _error_detail(decoded, body)
        error = QueryRejected if status in (400, 422) else DatasourceError
        raise error(backend=self.NAME, problem=self._explain(status, detail, url))


def _matches(match: Iterable[str]) -> list[tuple[str, str]]:
    return [("match[]", m) for m in match]


def _label_path(name: str) -> str:
    """A label name as the path segment of ``/api/v1/label/<name>/values``.

    A name outside the classic charset (``service.name``) is written with
    Prometheus 3's value encoding: ``U__`` then letters, digits and colons as
    they are, ``_`` doubled, any other character as its code point in hex
    between underscores (``U__service_2e_name``).
    """
    if name and (name[0].isascii() and (name[0].isalpha() or name[0] == "_")) and all(
            c.isascii() and (c.isalnum() or c == "_") for c in name):
        return name
    out = ["U__"]
    for index, char in enumerate(name):
        if char == "_":
            out.append("__")
        elif char.isascii() and (char.isalpha() or char == ":"
                                 or (char.isdigit() and index > 0)):
            out.append(char)
        else:
            out.append(f"_{ord(char):x}_")
    return "".join(out)


def _error_detail(decoded: Any, body: bytes) -> str:
    """One line out of any of the error shapes we know.

    Prometheus: ``{"status": "error", "errorType": ..., "error": ...}``;
    Aetos: ``{"error_message": {"faultstring": ...}}`` or
    ``{"error_message": "..."}``; keystonemiddleware:
    ``{"error": {"code": ..., "title": ..., "message": ...}}``.
    """
    if isinstance(decoded, dict):
        if decoded.get("status") == "error":
            kind = decoded.get("errorType")
            error = decoded.get("error", "")
            return f"{kind}: {error}" if kind else str(error)
        if "error_message" in decoded:
            message = decoded["error_message"]
            if isinstance(message, dict):
                message = message.get("faultstring") or message.get("message") or message
            return _shorten(_unwrap(message))
        if isinstance(decoded.get("error"), dict):
            error = decoded["error"]
            return _shorten(str(error.get("message") or error.get("title") or error))
    if isinstance(decoded, str):
        return _shorten(decoded)
    text = body.decode("utf-8", "replace").strip()
    return _shorten(text) if text else "empty answer"


def _unwrap(message: Any) -> str:
    """Aetos passes Prometheus's error through as text; pull out its ``error``."""
    text = str(message)
    start = text.find("{")
    if start >= 0:
        try:
            inner = json.loads(text[start:])
        except ValueError:
            return text
        if isinstance(inner, dict) and inner.get("status") == "error":
            prefix = text[:start].strip()
            kind = inner.get("errorType")
            error = f"{kind}: {inner.get('error')}" if kind else str(inner.get("error"))
            return f"{prefix} {error}".strip()
    return text


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
