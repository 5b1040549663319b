"""Signing in and out, sessions, lockout and CSRF of the web app (in-process)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from nervenbahn.accounts import UserStore
from nervenbahn.web.roles import home
from tests.web.client import USERS, csrf_of, sign_in

CASEWORKER, OFFICE = USERS[0], USERS[2]


def _store(client: TestClient) -> UserStore:
    users = client.app.state.context.users  # type: ignore[attr-defined]
    assert isinstance(users, UserStore)
    return users


def test_a_page_without_a_session_leads_to_the_sign_in_page_and_back(web: TestClient) -> None:
    asked = "/web/region/so-olten/work"
    page = web.get(asked, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/web/sign-in?next=%2Fweb%2Fregion%2Fso-olten%2Fwork"
    form = web.get(page.headers["location"])
    assert 'lang="de"' in form.text and "Anmelden" in form.text
    assert f'name="next" value="{asked}"' in form.text


def test_each_role_lands_on_its_home_page_with_a_secure_session_cookie(
    web_on: object, seeded: object
) -> None:
    for user in USERS:
        client = web_on(seeded)  # type: ignore[operator]
        landed = sign_in(client, user)
        assert landed.history[0].status_code == 303
        target = landed.history[0].headers["location"]
        assert target == home(_store(client).get(user.username))
        cookie = landed.history[0].headers["set-cookie"]
        assert "nb_session=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
        assert "SameSite=lax" in cookie


def test_a_wrong_password_is_refused_in_german_and_the_same_as_an_unknown_name(
    web: TestClient,
) -> None:
    wrong = sign_in(web, CASEWORKER, password="not the password")
    unknown = sign_in(web, USERS[0].__class__("nobody", "caseworker", "so-olten"))
    assert wrong.status_code == unknown.status_code == 401
    assert "Benutzername oder Passwort ist falsch." in wrong.text
    assert "Benutzername oder Passwort ist falsch." in unknown.text
    assert "nb_session" not in web.cookies


def test_five_wrong_passwords_lock_the_account_and_the_right_one_then_does_not_help(
    web: TestClient,
) -> None:
    for _ in range(5):
        last = sign_in(web, OFFICE, password="wrong password!")
    assert "gesperrt" in last.text
    locked = sign_in(web, OFFICE)
    assert locked.status_code == 401 and "gesperrt" in locked.text
    outcomes = [outcome for _, outcome in _store(web).sign_ins(OFFICE.username)]
    assert outcomes == ["refused"] * 5 + ["account locked", "locked"]


def test_sign_out_ends_the_session_on_the_server(web: TestClient) -> None:
    page = sign_in(web, CASEWORKER)
    token = web.cookies["nb_session"]
    out = web.post("/web/sign-out", data={"csrf_token": csrf_of(page)})
    assert "Sie sind abgemeldet." in out.text
    web.cookies.set("nb_session", token)  # a copy of the cookie kept by an attacker
    again = web.get("/web/region/so-olten/work", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/web/sign-in")


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(web: TestClient) -> None:
    sign_in(web, CASEWORKER)
    refused = web.post("/web/language", data={"language": "fr", "back": "/web/"})
    assert refused.status_code == 403
    assert "Formular abgelehnt" in refused.text
    forged = web.post("/web/language", data={"language": "fr", "csrf_token": "guess"})
    assert forged.status_code == 403
    assert _store(web).get(CASEWORKER.username).language == "de"


def test_a_sign_in_form_without_its_token_is_refused(web: TestClient) -> None:
    refused = web.post("/web/sign-in", data={"username": CASEWORKER.username,
                                            "password": CASEWORKER.password})
    assert refused.status_code == 403
    assert "nb_session" not in web.cookies


def test_the_language_is_the_users_choice_and_the_pages_follow_it(web: TestClient) -> None:
    page = sign_in(web, CASEWORKER)
    french = web.post("/web/language", data={"csrf_token": csrf_of(page), "language": "fr",
                                             "back": "/web/not-there"})
    assert 'lang="fr"' in french.text and "Introuvable" in french.text
    assert _store(web).get(CASEWORKER.username).language == "fr"


def test_a_sign_in_never_redirects_to_another_site(web: TestClient) -> None:
    form = web.get("/web/sign-in")
    landed = web.post("/web/sign-in", data={
        "csrf_token": csrf_of(form), "username": CASEWORKER.username,
        "password": CASEWORKER.password, "next": "//evil.example/web/"}, follow_redirects=False)
    assert landed.headers["location"] == home(_store(web).get(CASEWORKER.username))


def test_pages_forbid_framing_and_foreign_scripts(web: TestClient) -> None:
    page = web.get("/web/sign-in")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "x-frame-options" not in web.get("/health/live").headers  # the API's answers


def test_a_page_whose_read_model_is_missing_is_an_html_page_not_a_problem_document(
    web_on: object, seeded: object, tmp_path: object
) -> None:
    from pathlib import Path

    client = web_on(seeded, region_db=Path(str(tmp_path)) / "nowhere.db")  # type: ignore[operator]
    sign_in(client, CASEWORKER)
    page = client.get("/web/region/so-olten/work")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "Nicht verfügbar" in page.text
    api = client.get("/v1/regions/so-olten/caseload", headers={"X-API-Key": "x"})
    assert api.headers["content-type"].startswith("application/problem+json")


def test_a_name_that_is_no_account_is_never_stored_as_typed(web: TestClient, tmp_path: object
                                                            ) -> None:
    typed = ["756.1234.5678.97", "my secret password"]  # an AHV number, a misplaced password
    for name in typed:
        for _ in range(5):
            last = sign_in(web, CASEWORKER.__class__(name, "caseworker", "so-olten"))
    assert "gesperrt" in last.text  # the unknown name locks as an account would
    store = _store(web)
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    for name in typed:
        assert name.encode() not in raw
        assert [outcome for _, outcome in store.sign_ins(name)][-2:] == ["refused",
                                                                        "account locked"]


def test_a_busy_session_still_ends_twelve_hours_after_its_sign_in(tmp_path: object) -> None:
    from datetime import timedelta
    from pathlib import Path

    from tests.api.conftest import NOW
    from tests.web.conftest import FAST_HASHER

    store = UserStore(Path(str(tmp_path)) / "u.db", session_minutes=30, hasher=FAST_HASHER)
    store.add("anna", role="canton", organisation="so", password="a long password",
              now=NOW, by="test")
    signed = store.sign_in("anna", "a long password", now=NOW)
    assert signed.token is not None
    moment = NOW
    while moment < NOW + timedelta(hours=12):  # a request every 20 minutes, all day
        moment += timedelta(minutes=20)
        alive = store.session(signed.token, now=moment)
        assert (alive is not None) == (moment - NOW <= timedelta(hours=12)), moment
    store.close()


def test_the_accounts_file_is_opened_by_one_process_at_a_time(tmp_path: object) -> None:
    """Two `serve` starting together on a new store both switched the file to WAL, and one
    failed with "database is locked": opening waits for the file's turn (another opener)."""
    import threading
    from pathlib import Path

    from nervenbahn.store_opening import sqlite_turn
    from tests.web.conftest import FAST_HASHER

    path = Path(str(tmp_path)) / "users.db"
    opened: list[UserStore] = []
    with sqlite_turn(path):  # another process opening the file
        thread = threading.Thread(
            target=lambda: opened.append(UserStore(path, hasher=FAST_HASHER)), daemon=True)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and opened == []  # waiting for the turn
    thread.join(timeout=30)
    assert len(opened) == 1
    opened[0].close()
