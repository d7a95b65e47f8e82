"""Policy decisions from an OPA server over HTTP.

The OPA backend asks an OPA server (serving the bundle built by
``hitlgate policy bundle``) for ``data.hitlgate.decision`` and refuses any
answer that did not come from the revision of the local pack.

How it talks to OPA (``opa-python-client``):

* One :class:`opa_client.OpaClient` per backend; its ``requests.Session``
  keeps connections alive, so a decision costs one round trip on a warm
  connection. The client's ``timeout`` (``backend.timeout_ms``) bounds the
  connect and the read of every call.
* The client's urllib3 retries are turned off (``retries=0``): a retry after
  a timeout would multiply the time an agent waits before it gets its
  ``deny``, and a retried connection refusal hides an outage from the log.
  The next decision simply tries again, which is how the backend recovers
  by itself when OPA comes back.
* Only the decision query is made (as ``query_rule`` makes it, on the
  client's session, see :meth:`OpaBackend._post`). Policies are never pushed through the REST
  API: ``update_policy_from_string`` defaults to ``rego_compat=True``, which
  rewrites a policy OPA rejected and uploads it again. OPA serves the
  bundle, whose manifest names the revision.
* A non-2xx answer raises ``requests.HTTPError`` (as ``query_rule``
  would, not the client's own errors), and a body without ``result`` means the
  rule is undefined; both are handled here.

Facts: the bundle holds the modules only. Each query's input carries the
target's neighbourhood under ``inventory``, looked up in the local
:class:`~hitlgate.engine.decide.facts.FactIndex` (the same one the embedded engine
uses, see :func:`hitlgate.engine.decide.backends.with_facts`), so both engines
decide on the same facts and an inventory change needs no new bundle.

Revision check: every decision query carries ``?provenance=true``, so OPA
returns the revision of each bundle it serves *in the same response* as the
decision (``provenance.bundles.<name>.revision``). This costs nothing extra
(no second request, no status plugin) and cannot race a bundle reload: the
revision checked is the one that decided. OPA must serve exactly the local
*modules* revision; a server serving no bundle, more than one revision, or
any other revision fails closed with
:class:`~hitlgate.errors.BackendUnavailable` naming both. The decision
reports the policy revision: the modules revision OPA served combined with
the revision of the inventory the facts came from.

Each failure has its own reason (timeout, unreachable, HTTP error, malformed
answer, stale revision, undefined) and an operator log line that says what
to check. To keep an outage from flooding the log, the backend logs a
problem when it starts or changes, and logs once more when OPA recovers;
the :class:`~hitlgate.engine.decide.decider.Decider` still logs every failed
decision.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from opa_client import OpaClient

from hitlgate.engine.config import Config
from hitlgate.engine.decide._regoscan import inventory_sections_read
from hitlgate.engine.decide.backends import with_facts
from hitlgate.engine.decide.facts import FactIndex, FactSource, shared_file_facts
from hitlgate.engine.decide.policy import (
    DECISION_PATH,
    PolicyModules,
    PolicyPack,
    Reloading,
    as_policy_error,
    combine_revisions,
)
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import BackendUnavailable, ConfigError, HitlgateError, PolicyError, ValidationError

log = logging.getLogger(__name__)

_JSON_HEADERS = {"Content-Type": "application/json"}

#: A proposal every pack must be able to decide, used by ``hitlgate doctor``.
PROBE_INPUT: Mapping[str, Any] = {
    "action": {"type": "notify_owner", "target": "hitlgate-doctor-probe", "parameters": {}},
    "requester": {"id": "hitlgate-doctor", "kind": "service"},
    "justification": "hitlgate doctor: health probe, never executed",
}


@dataclass(frozen=True)
class OpaAnswer:
    """One raw answer from OPA, before the revision check."""

    #: The decision document, or None when OPA left the rule undefined.
    result: Any
    #: Bundle name -> revision, as OPA reported them for this query.
    bundles: Mapping[str, str]

    @property
    def revisions(self) -> tuple[str, ...]:
        """The distinct revisions OPA serves, sorted."""
        return tuple(sorted(set(self.bundles.values())))


class OpaBackend:
    """Evaluates ``data.hitlgate.decision`` on an OPA server (see module docstring)."""

    name = "opa"

    def __init__(
        self,
        url: str,
        *,
        expected_revision: str | None = None,
        pack: PolicyPack | None = None,
        policy_dir: Path | None = None,
        data_paths: tuple[Path, ...] = (),
        facts: FactSource | None = None,
        timeout_ms: int = 500,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Connect to the OPA server at ``url`` (no request is made yet).

        Give exactly one of: the local pack's files (``policy_dir`` and
        ``data_paths``), whose revisions follow the files as they change; a
        loaded ``pack``, fixed; or a fixed modules ``expected_revision`` with
        ``facts`` (without facts the backend can only :meth:`query`, as
        ``hitlgate doctor`` does). ``facts`` replaces the inventory files.
        """
        if sum(x is not None for x in (expected_revision, pack, policy_dir)) != 1:
            raise ConfigError("OpaBackend needs exactly one of expected_revision, pack or policy_dir")
        if timeout_ms < 1:
            raise ConfigError(f"backend.timeout_ms must be at least 1, got {timeout_ms}")
        self.url = url.rstrip("/")
        self.timeout_ms = timeout_ms
        self._fixed_revision = expected_revision
        self._modules: Reloading[PolicyModules] | None = None
        #: The sources of a fixed pack's modules (None with a bare expected_revision: no text to read).
        self._fixed_sources: tuple[tuple[str, str], ...] | None = None
        #: (modules revision, the inventory sections those modules may read), for the last revision seen.
        self._sections: tuple[str, frozenset[str] | None] | None = None
        self.facts: FactSource | None = facts
        if pack is not None:
            self._fixed_revision = pack.modules_revision
            self._fixed_sources = pack.modules
            if facts is None:
                self.facts = FactIndex(pack.inventory.document, pack.inventory.revision)
        elif policy_dir is not None:
            local = Path(policy_dir)
            self._modules = Reloading(
                lambda: PolicyModules.load(local), lambda: PolicyModules.watched_paths(local),
                what=f"local policy pack {local} (the revision OPA must serve)",
            )
            if facts is None:
                self.facts = shared_file_facts(tuple(data_paths), limits=limits)
        self._client = _make_client(self.url, timeout_ms / 1000.0)
        self._session: requests.Session = self._client._session
        # The proxy, CA bundle and netrc settings of the environment, read once here rather than on
        # every request: requests scans the whole environment per request (more than the rest of
        # the client's work), and a decision service's environment does not change under it.
        settings = self._session.merge_environment_settings(self.url, {}, None, None, None)
        self._session.proxies.update(settings["proxies"])
        self._session.verify = settings["verify"]
        netrc_auth = requests.utils.get_netrc_auth(self.url)
        if netrc_auth is not None:
            self._session.auth = netrc_auth
        self._session.trust_env = False
        self._decision_url = f"{self._client.root_url}/data/{DECISION_PATH}?provenance=true"
        self._problem_lock = threading.Lock()
        self._problem: str | None = None

    @classmethod
    def from_config(cls, config: Config, *, facts: FactSource | None = None) -> OpaBackend:
        """The backend ``backend: {kind: opa, url, timeout_ms}`` describes."""
        if not config.backend.url:
            raise ConfigError("backend.url is required when backend.kind is opa")
        return cls(
            config.backend.url,
            policy_dir=config.policy_dir,
            data_paths=tuple(config.data_paths),
            facts=facts,
            timeout_ms=config.backend.timeout_ms,
            limits=config.limits,
        )

    @property
    def expected_modules_revision(self) -> str:
        """The modules revision OPA must serve (the local modules', or the fixed one)."""
        if self._fixed_revision is not None:
            return self._fixed_revision
        assert self._modules is not None  # noqa: S101 - invariant of __init__.
        try:
            return self._modules.get().revision
        except HitlgateError as exc:
            raise PolicyError(f"local policy pack is broken, expected revision unknown: {exc}") from exc

    @property
    def expected_revision(self) -> str:
        """The policy revision decisions get now: the modules OPA must serve and the local inventory."""
        modules = self.expected_modules_revision
        if self.facts is None:
            return modules
        return combine_revisions(modules, self._index().revision)

    def _sections_read(self, revision: str) -> frozenset[str] | None:
        """The inventory sections the modules of ``revision`` may read; None (all) when their text is unknown.

        The same answer the embedded engine gets from the same modules, so
        both engines evaluate the same input.
        """
        cached = self._sections
        if cached is not None and cached[0] == revision:
            return cached[1]
        sources: tuple[tuple[str, str], ...] | None = None
        if self._modules is not None:
            try:
                modules = self._modules.get()
            except HitlgateError:
                return None
            if modules.revision == revision:
                sources = modules.modules
        elif self._fixed_sources is not None and revision == self._fixed_revision:
            sources = self._fixed_sources
        if sources is None:
            return None
        sections = inventory_sections_read(source for _, source in sources)
        self._sections = (revision, sections)
        return sections

    def _index(self) -> FactIndex:
        if self.facts is None:
            raise PolicyError("the OPA backend has no inventory to take facts from (give pack, policy_dir or facts)")
        try:
            return self.facts.current()
        except ValidationError as exc:
            raise as_policy_error(exc) from exc

    def query(self, input_document: Mapping[str, Any]) -> OpaAnswer:
        """Ask OPA for the decision, without checking the revision.

        Raises :class:`BackendUnavailable` when OPA did not give a usable
        answer (timeout, unreachable, HTTP error, malformed body) and
        :class:`PolicyError` when OPA reports an evaluation error.
        """
        try:
            body = self._post(input_document)
        except requests.Timeout as exc:
            raise self._unavailable(
                f"OPA at {self.url} did not answer within {self.timeout_ms} ms (timeout)",
                "check the OPA server's load and health, or raise backend.timeout_ms",
            ) from exc
        except requests.ConnectionError as exc:
            raise self._unavailable(
                f"OPA at {self.url} is unreachable (connection refused or reset: {_root_cause(exc)})",
                "check that the OPA server is running and that backend.url is right",
            ) from exc
        except requests.HTTPError as exc:
            raise self._http_error(exc) from exc
        except requests.RequestException as exc:
            raise self._unavailable(
                f"request to OPA at {self.url} failed: {exc}", "check backend.url and the network"
            ) from exc
        except ValueError as exc:
            # The body is decoded as JSON; a proxy's HTML page lands here.
            raise self._unavailable(
                f"OPA at {self.url} answered with a body that is not JSON",
                "check that backend.url points at OPA itself, not a proxy or another service",
            ) from exc
        if not isinstance(body, dict):
            raise self._unavailable(f"OPA at {self.url} answered with a malformed body", "check backend.url")
        provenance = body.get("provenance")
        bundles: dict[str, str] = {}
        if isinstance(provenance, dict) and isinstance(provenance.get("bundles"), dict):
            for name, info in provenance["bundles"].items():
                if isinstance(info, dict) and isinstance(info.get("revision"), str):
                    bundles[str(name)] = info["revision"]
        # A missing "result" key is how OPA says "undefined".
        return OpaAnswer(result=body.get("result"), bundles=bundles)

    def _post(self, input_document: Mapping[str, Any]) -> Any:
        """POST the input to the decision rule (with provenance) and decode the answer.

        What ``OpaClient.query_rule`` does, on the client's own session,
        with the body encoded and the answer decoded by orjson (the
        standard ``json`` module, for a value orjson refuses, such as an
        integer beyond 64 bits) and the URL built once.
        """
        try:
            payload = orjson.dumps({"input": input_document})
        except TypeError:
            payload = json.dumps({"input": input_document}).encode("utf-8")
        response = self._session.post(
            self._decision_url, data=payload, headers=_JSON_HEADERS, timeout=self._client.timeout
        )
        response.raise_for_status()
        return orjson.loads(response.content)

    def evaluate(self, input_document: Mapping[str, Any]) -> tuple[Any, str]:
        """Evaluate ``data.hitlgate.decision`` on OPA, with the target's facts, and check the revision."""
        expected = self.expected_modules_revision
        document, inventory_revision = with_facts(input_document, self._index(), self._sections_read(expected))
        answer = self.query(document)
        served = answer.revisions
        if not served:
            raise self._unavailable(
                f"OPA at {self.url} serves no bundle, so its policy revision is unknown (expected {expected})",
                "start OPA with `opa run --server --bundle <file>` from `hitlgate policy bundle`",
            )
        if served != (expected,):
            raise self._unavailable(
                f"policy revision mismatch: OPA at {self.url} serves {', '.join(served)} "
                f"but the local pack's modules are {expected}; refusing a stale OPA",
                "deploy the bundle of the current pack (`hitlgate policy bundle`) to OPA",
            )
        if answer.result is None:
            # The Decider turns an undefined result into a deny with its own
            # reason; the log line here tells the operator where to look.
            self._note_problem(
                f"OPA at {self.url} left data.hitlgate.decision undefined (revision {expected})",
                "check that the bundle defines the decision rule for every input",
            )
        else:
            self._note_recovered()
        return answer.result, combine_revisions(expected, inventory_revision)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close_connection()

    # -- diagnostics ---------------------------------------------------------

    def _unavailable(self, reason: str, hint: str) -> BackendUnavailable:
        self._note_problem(reason, hint)
        return BackendUnavailable(reason)

    def _http_error(self, exc: requests.HTTPError) -> HitlgateError:
        response = exc.response
        status = response.status_code if response is not None else 0
        code, message = "", ""
        if response is not None:
            try:
                err = response.json()
                code, message = str(err.get("code", "")), str(err.get("message", ""))
                # The generic message ("error(s) occurred while evaluating
                # query") is useless alone; the first detail names the rule.
                details = err.get("errors") or []
                if details and isinstance(details[0], dict):
                    first = details[0]
                    message = f"{message}: {first.get('code', '')}: {first.get('message', '')}"
            except ValueError:
                message = response.text[:200]
        reason = f"OPA at {self.url} answered HTTP {status} {code}: {message}".rstrip(": ")
        if status == 500 and code == "internal_error":
            # OPA reports evaluation errors (conflicting rule values, a
            # built-in error in strict mode) as internal_error: a policy bug.
            self._note_problem(f"OPA evaluation error: {reason}", "fix the policy; run `opa check --strict`")
            return PolicyError(f"OPA evaluation error: {reason}")
        return self._unavailable(reason, "check the OPA server's log")

    def _note_problem(self, reason: str, hint: str) -> None:
        with self._problem_lock:
            if self._problem == reason:
                return
            self._problem = reason
        log.error("OPA backend failing closed (every decision is deny): %s; %s", reason, hint)

    def _note_recovered(self) -> None:
        with self._problem_lock:
            if self._problem is None:
                return
            previous, self._problem = self._problem, None
        log.warning("OPA backend at %s answers correctly again (after: %s)", self.url, previous)


def _make_client(url: str, timeout_s: float) -> OpaClient:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"backend.url must be http(s)://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query:
        # The client builds /v1/... from host and port; a path would be dropped silently.
        raise ConfigError(f"backend.url must not have a path or query, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return OpaClient(
        host=parts.hostname,
        port=port,
        ssl=parts.scheme == "https",
        retries=0,
        timeout=timeout_s,
    )


def _root_cause(exc: BaseException) -> str:
    # requests wraps urllib3 errors several layers deep; the innermost one
    # ("[Errno 111] Connection refused") is what an operator recognises.
    seen: BaseException = exc
    while True:
        inner = seen.__cause__ or seen.__context__
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(seen)
    return text.rsplit(": ", 1)[-1] if "Errno" in text else text[:200]
