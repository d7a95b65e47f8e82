"""The enrolment page looks like the console and, once the passkey exists, leads to its sign-in.

Before the fix the page was unstyled (no console stylesheet or header) and
ended with "You can close this page", so a new approver was not told where
to go next. It now carries the console's stylesheet and header, and a
hidden "sign in to the console" link that its script shows after enrolment.
"""

from __future__ import annotations

import re

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console


def test_enrolment_page_has_the_console_style_and_a_sign_in_link(engine: Engine, console: Console) -> None:
    _enrolment, token = engine.passkeys.create_enrolment("alice")
    page = console.client.get(f"/ui/enroll/{token}")
    assert page.status_code == 200, page.text
    stylesheet = re.search(r'<link rel="stylesheet" href="(/ui/static/console\.css\?v=[0-9a-f]{12})">', page.text)
    assert stylesheet is not None, page.text
    css = console.client.get(stylesheet.group(1))
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert '<header class="top">' in page.text
    assert '<p id="next" hidden>Next: <a href="/ui/login">sign in to the console</a>' in page.text
    script = console.client.get("/ui/static/enroll.js").text
    assert 'document.getElementById("next").hidden = false;' in script


def test_a_refused_link_is_styled_too_and_offers_no_sign_in(console: Console) -> None:
    page = console.client.get("/ui/enroll/not-a-token-at-all-but-long-enough")
    assert page.status_code == 403
    assert '<p id="status" class="alert" role="alert">' in page.text
    assert 'id="next"' not in page.text
