"""Web-app page latency on the demo's data, beside a trivial endpoint on the same stack.

    .venv/bin/python benchmarks/web_pages.py [--households N] [--clients N] [--requests M]
                                             [--pages P] [--json] [--seed S]

Builds the demo's installation in a temporary folder (`nervenbahn demo --no-bus`: the
synthetic canton, its benefit applications, payments, read models; 4,000 households like `make
demo` unless --households says otherwise), adds one web account per role, and serves the API
and the web app (uvicorn on 127.0.0.1, in a thread). For each role it signs in through the
sign-in form and collects up to P pages by following the links of its pages from its home page
(breadth first, pages under /web/ only): the pages a person of that role reaches by clicking.
Then N client threads (one keep-alive `httpx.Client` each, roles taken in turn) send M requests
each, cycling through their role's pages; the same number of requests go to a one-route FastAPI
app served the same way. Target (issue 16): every role's pages p95 < 150 ms.

The session cookie is sent over plain HTTP here (NERVENBAHN_WEB_SECURE_COOKIES=false): the
benchmark talks to 127.0.0.1 without TLS.
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import secrets
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from report import Row, add_output_arguments, emit_json, percentile, print_table
from rich.console import Console

from nervenbahn.accounts import UserStore
from nervenbahn.api import create_app
from nervenbahn.config import load_settings
from nervenbahn.container import Container
from nervenbahn.demo import run_demo
from nervenbahn.logging import configure_logging
from projections import READ_MODELS

P95_TARGET_MS = 150.0
PASSWORD = "benchmark password"
ACCOUNTS = (
    ("bench.caseworker", "caseworker", "so-olten"),
    ("bench.office", "branch_office", "akso-olten"),
    ("bench.fund", "fund_officer", "akso"),
    ("bench.canton", "canton", "so"),
    ("bench.auditor", "auditor", "finanzkontrolle"),
)
_LINK = re.compile(r'href="(/web/[^"#]*)"')
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+)(?=/|$)")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=len(ACCOUNTS),
                        help="client threads, roles taken in turn (default: one per role)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pages", type=int, default=25, help="pages per role (default 25)")
    add_output_arguments(parser)
    args = parser.parse_args()
    if args.households < 1 or args.clients < 1 or args.requests < 2 or args.pages < 1:
        parser.error("--households, --clients, --pages must be ≥ 1, --requests ≥ 2")
    configure_logging("json", "warning")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        rows, pages = measure(Path(folder), args.households, args.seed, clients=args.clients,
                              requests=args.requests, pages=args.pages)
    runtime = time.perf_counter() - started
    notes = [f"demo data of {args.households} households (SQLite); {pages} pages collected "
             f"by following links from each role's home page",
             f"{args.clients} clients × {args.requests} requests each side, server and clients "
             "in one process (uvicorn in a thread); ratio = trivial p95 / page p95"]
    if args.json:
        emit_json(runtime, args.seed, {"households": args.households, "clients": args.clients,
                                       "requests": args.requests}, rows, notes)
        return
    print_table("nervenbahn web pages: p95 per role vs a trivial endpoint (same run)", rows,
                notes, fmt=_fmt, describe=_describe, seed=args.seed, runtime=runtime)


def _fmt(row: Row, side: str) -> str:
    d = row.detail
    return "\n".join(f"p{p} {d[f'{side}_p{p}_ms']:,.1f} ms" for p in (50, 95))


def _describe(row: Row) -> list[str]:
    d = row.detail
    lines = [f"{row.what}: {d['count']} requests, max {d['nervenbahn_max_ms']:.1f} ms"]
    for template, figures in sorted(d["pages"].items()):
        lines.append(f"  {template:<58} {figures['count']:>4} req  p50 {figures['p50_ms']:6.1f}"
                     f"  p95 {figures['p95_ms']:6.1f}  max {figures['max_ms']:6.1f} ms")
    return lines


def measure(
    folder: Path, households: int, seed: int, *, clients: int, requests: int, pages: int
) -> tuple[list[Row], int]:
    """Seed the demo's data, collect each role's pages, time them against the trivial app."""
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_KEY_DIR": str(folder / "keys"),
        "NERVENBAHN_WEB_SECURE_COOKIES": "false",
    })
    container = Container(settings)
    try:
        quiet = Console(file=io.StringIO(), width=160)
        run_demo(container, quiet, households=households, seed=seed, reset=False, bus=False)
        users = UserStore(settings.web.users)
        for username, role, organisation in ACCOUNTS:
            users.add(username, role=role, organisation=organisation, password=PASSWORD,
                      now=datetime.now(UTC), by="benchmark")
        users.close()
        for name in READ_MODELS:  # as `serve` builds them at start (the demo's bus is off)
            container.refresh_read_model(name)
        context = container.api_context()
        try:
            with _serving(create_app(context)) as url, _serving(_trivial_app()) as raw_url:
                sessions = {role: _signed_in(url, username)
                            for username, role, _org in ACCOUNTS}
                found = {role: _collect(sessions[role], pages) for role in sessions}
                rows = _timed(url, raw_url, found, clients, requests)
                for client in sessions.values():
                    client.close()
                return rows, sum(len(v) for v in found.values())
        finally:
            context.close()
    finally:
        container.close()


def _signed_in(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    form = client.get("/web/sign-in")
    token = _TOKEN.search(form.text)
    assert token, "no CSRF token on the sign-in page"
    landed = client.post("/web/sign-in", data={"csrf_token": token[1], "username": username,
                                               "password": PASSWORD, "next": "/web/"})
    if landed.status_code != 200 or "nb_session" not in client.cookies:
        raise RuntimeError(f"{username} could not sign in: {landed.status_code}")
    return client


def _collect(client: httpx.Client, limit: int) -> list[str]:
    """Pages reachable by links from the home page, breadth first, at most 3 per template."""
    home = str(client.get("/web/").url.path)
    seen, queue, kept, per_template = {home}, deque([home]), [], {}
    while queue and len(kept) < limit:
        path = queue.popleft()
        page = client.get(path)
        if page.status_code != 200:
            raise RuntimeError(f"GET {path}: {page.status_code}")
        kept.append(path)
        for link in _LINK.findall(page.text):
            link = link.replace("&amp;", "&")
            template = template_of(link)
            if (link in seen or link == "/web/" or link.startswith("/web/static")
                    or "sign-out" in link):
                continue
            if per_template.get(template, 0) >= 3:
                continue
            per_template[template] = per_template.get(template, 0) + 1
            seen.add(link)
            queue.append(link)
    return kept


def template_of(path: str) -> str:
    """A page's address with its ids and query replaced (`/web/region/so-olten/cases/{id}`)."""
    return _ID.sub("/{id}", path.split("?")[0])


def _timed(url: str, raw_url: str, found: dict[str, list[str]], clients: int, requests: int
           ) -> list[Row]:
    roles = list(found)
    plans = [(roles[i % len(roles)], found[roles[i % len(roles)]]) for i in range(clients)]
    nb = _run(url, plans, requests)
    raw = _run(raw_url, [(role, ["/ping"]) for role, _ in plans], requests)
    rows = []
    for role in roles:
        mine = [ms for r, _p, ms in nb if r == role]
        if not mine:
            continue
        theirs = [ms for r, _p, ms in raw if r == role] or [ms for _r, _p, ms in raw]
        by_page: dict[str, list[float]] = {}
        for r, path, ms in nb:
            if r == role:
                by_page.setdefault(template_of(path), []).append(ms)
        p95, raw_p95 = percentile(mine, 95), percentile(theirs, 95)
        rows.append(Row(
            key=f"web_{role}", what=f"web pages: {role}", backend="sqlite", unit="ms",
            nervenbahn=p95, raw=raw_p95, ratio=raw_p95 / p95,
            target=f"p95 < {P95_TARGET_MS:.0f} ms", met=p95 < P95_TARGET_MS,
            detail={"count": len(mine), "nervenbahn_p50_ms": percentile(mine, 50),
                    "nervenbahn_p95_ms": p95, "nervenbahn_max_ms": max(mine),
                    "raw_p50_ms": percentile(theirs, 50), "raw_p95_ms": raw_p95,
                    "pages": {t: {"count": len(v), "p50_ms": percentile(v, 50),
                                  "p95_ms": percentile(v, 95), "max_ms": max(v)}
                              for t, v in by_page.items()}},
        ))
    return rows


def _run(url: str, plans: list[tuple[str, list[str]]], requests: int
         ) -> list[tuple[str, str, float]]:
    """Each plan's client (signed in as its role) GETs its pages in turn, `requests` times;
    all threads start together. Every request's (role, path, ms)."""
    clients = [_signed_in(url, _user_of(role)) if not pages[0].startswith("/ping")
               else httpx.Client(base_url=url, timeout=30) for role, pages in plans]
    barrier = threading.Barrier(len(plans))
    timed: list[list[tuple[str, str, float]]] = [[] for _ in plans]
    errors: list[str] = []

    def client(index: int) -> None:
        role, pages = plans[index]
        barrier.wait()
        try:
            for n in range(requests):
                path = pages[n % len(pages)]
                begun = time.perf_counter()
                response = clients[index].get(path)
                timed[index].append((role, path, 1000 * (time.perf_counter() - begun)))
                if response.status_code != 200:
                    errors.append(f"GET {path}: {response.status_code}")
        except Exception as exc:  # an error in a thread must fail the run, not vanish
            errors.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for c in clients:
        c.close()
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed, first: {errors[0]}")
    return [call for calls in timed for call in calls]


def _user_of(role: str) -> str:
    return next(username for username, r, _org in ACCOUNTS if r == role)



@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1, in a thread; yields its URL.
    (read_models.py now serves its API from a process of its own; these pages keep the
    in-thread server they were measured with.)"""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _trivial_app() -> FastAPI:
    """The raw baseline: FastAPI with one sync route (like nervenbahn's) and a constant."""
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app

if __name__ == "__main__":
    main()
