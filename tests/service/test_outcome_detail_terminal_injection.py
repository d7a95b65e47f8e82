"""An executor's outcome ``detail`` cannot carry terminal escapes, carriage returns or bidi overrides.

The detail becomes the request's ``status_reason``, which ``hitlgate show``
and the console print: an escape sequence could clear or rewrite an
approver's terminal, a carriage return or a line separator could forge a
line, and a bidi override could make the text read otherwise than it is
stored. Like an approval's ``reason``, such a detail is refused (400
``invalid_outcome``, naming ``detail``) before anything is recorded;
newlines and tabs stay allowed. Against the real server, through the whole
flow to a consumed warrant.
"""

from __future__ import annotations

import httpx

from hitlgate.client import Client
from tests.service.conftest import Service, proposal_doc

HOSTILE = [
    "\x1b[2J\x1b[Hall clear",  # ESC: clear the screen.
    "done\rerror: rollback failed",  # A carriage return rewrites the line.
    "\x9b31mred",  # C1 CSI.
    "bell\x07",
    "nul\x00byte",
    "\x7fdelete",
    "line\u2028separator",
    "\u202eevil\u202c",  # RIGHT-TO-LEFT OVERRIDE ... POP DIRECTIONAL FORMATTING.
    "\u202a\u202b\u202d",
    "\u2066isolated\u2069",
    "\u2067\u2068",
]


def test_outcome_detail_with_control_or_bidi_characters_is_refused(service: Service) -> None:
    agent = Client(service.url, api_key=service.tokens["soc-agent-7"])
    viewer = Client(service.url, api_key=service.tokens["viewer-1"])
    executor = Client(service.url, api_key=service.tokens["exec-1"])
    req = agent.propose(proposal_doc(target="svc-ci-runner"))
    assert viewer.vote(req["id"], service.signed(req, "carol"))["status"] == "granted"
    token = agent.warrant(req["id"])["token"]
    jti = executor.verify(token, req["action"], consume=True)["jti"]
    url = f"{service.url}/v1/requests/{req['id']}/outcome"
    for detail in HOSTILE:
        r = httpx.post(url, json={"jti": jti, "outcome": "executed", "detail": detail},
                       headers=service.headers("exec-1"))
        assert r.status_code == 400, (detail, r.text)
        err = r.json()["error"]
        # A NUL is refused earlier, by the strict JSON parser (bad_encoding), also naming detail.
        assert err["code"] == ("bad_encoding" if "\x00" in detail else "invalid_outcome"), err
        assert any(p.startswith("detail: ") for p in err["problems"]), err
        assert detail not in r.text  # The refusal does not echo what it refuses.
    assert agent.get(req["id"])["status"] == "granted"  # Nothing was recorded.

    fine = "rotated\n\tkey-1 -> key-2\nüñíçødé ok"
    done = executor.report_outcome(req["id"], jti, "executed", fine)
    assert done["status"] == "executed" and fine in done["status_reason"]
    for c in (agent, viewer, executor):
        c.close()
