"""The fuzz step of scripts/fuzz (run it through that script, which makes the venv).

Starts `nanum serve` on a fresh SQLite database (JSON logs), validates its OpenAPI
document, seeds an open event, snapshots the database, runs schemathesis with an admin and
then a reader token for a bounded time, and compares the database with what the 2xx
answers of the access log account for: a rejected request must change nothing.

usage: fuzz_check.py NANUM_BINARY VENV_BIN_DIR
"""

import base64
import collections
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

SECONDS = int(os.environ.get("NANUM_FUZZ_SECONDS", "120"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
    ]
)

failures = []


def fail(message):
    failures.append(message)
    print(f"FUZZ FAILURE: {message}", flush=True)


def call(base, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def raw(base, request: bytes):
    """Sends `request` as is (no client re-encoding); returns (status, body) or None when
    the connection is dropped without an answer."""
    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(request)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def probe_known_crashes(base, admin):
    """Crashes found before, sent on purpose so the step fails loudly on them every run
    instead of whenever the fuzzer happens on them."""
    auth = f"Authorization: Bearer {admin}\r\n".encode()

    def request(method, target: bytes, body=b"", headers=b""):
        return (
            method.encode() + b" " + target + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n" + headers
            + (b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body) if body else b"")
            + b"\r\n" + body
        )

    status, book = call(base, "POST", "/api/v1/books", {"title": "İSTANBUL İİİ kitap", "author": "İz"}, admin)
    time.sleep(1.5)  # the outbox sync task indexes it (every 200 ms)
    big = json.dumps({"title": "x", "author": "y", "description": "d" * 70_000}).encode()
    probes = [
        ("page overflow (books)", request("GET", b"/api/v1/books?page=18446744073709551615&size=100"), None),
        ("page overflow (events)", request("GET", b"/api/v1/events?page=18446744073709551615&size=100"), None),
        ("page overflow (search)", request("GET", b"/api/v1/books/search?q=a&page=18446744073709551615&size=100"), None),
        ("highlighter case-mapping", request("GET", b"/api/v1/books/search?q=kitap"), None),
        ("ISBN slicing", request("POST", b"/api/v1/books", json.dumps({"title": "t", "author": "a", "isbn": "12345678\u00e9"}).encode(), auth), None),
        ("%00 in q", request("GET", b"/api/v1/books/search?q=%00"), None),
        ("%00 in q (like)", request("GET", b"/api/v1/books/search?q=a%00b&engine=like"), None),
        ("raw UTF-8 query", request("GET", "/api/v1/books/search?q=소년".encode()), None),
        ("body over 64 KiB", request("POST", b"/api/v1/books", big, auth), 413),
    ]
    for name, wire, expected in probes:
        answer = raw(base, wire)
        if answer is None:
            fail(f"known crash [{name}]: the connection was dropped without an answer")
        elif answer[0] >= 500:
            fail(f"known crash [{name}]: {answer[0]} {answer[1][:200]!r}")
        elif expected is not None and answer[0] != expected:
            fail(f"known issue [{name}]: {answer[0]}, the contract says {expected}")
        else:
            print(f"probe [{name}]: {answer[0]}")
    if status == 201:
        call(base, "DELETE", f"/api/v1/books/{book['id']}", None, admin)


def form_post(base, path, fields, cookies, origin=None):
    """A form post with `cookies`; returns (status, location)."""
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(base + path, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
    if origin:
        request.add_header("Origin", origin)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.status, response.headers.get("Location")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location")


def form_visit(base, path):
    """GET a page: (its CSRF field, the cookies it set)."""
    with urllib.request.urlopen(base + path, timeout=30) as response:
        html = response.read().decode()
        cookies = {}
        for line in response.headers.get_all("Set-Cookie") or []:
            name, _, value = line.split(";")[0].partition("=")
            cookies[name] = value
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    return (match.group(1) if match else ""), cookies


def probe_abuse_classes(base):
    """Request data the schema does not describe: invented methods, header values and
    paths (metrics and logs must stay bounded), control characters in form fields and
    Unicode lookalikes in identities (a clear 4xx or a clean redirect, never a 5xx)."""
    filler = "X" * 2000
    for i in range(300):
        wire = (
            f"M{i:05d}{filler} /x{i}/{filler} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
            f"User-Agent: a{i}{filler}\r\nX-Request-Id: {i}{filler}\r\nX-Invented-{i}: {filler}\r\n\r\n"
        ).encode()
        answer = raw(base, wire)
        if answer is None or answer[0] >= 500:
            fail(f"invented method {i}: {answer and answer[0]}")
            return
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        metrics = response.read()
    if len(metrics) > 256 * 1024 or filler.encode() in metrics:
        fail(f"/metrics grew with invented methods: {len(metrics)} bytes")
    else:
        print(f"probe [invented methods, paths, headers]: /metrics {len(metrics)} bytes")

    lookalikes = ["adm\u200bin@fuzz.example", "\u0430dmin@fuzz.example", "\uff41dmin@fuzz.example",
                  "\u0130x@fuzz.example", "admin\u0000@fuzz.example"]
    for email in lookalikes:
        status, _ = call(base, "POST", "/api/v1/users", {"email": email, "password": "fuzz-reader", "name": "R"})
        if status != 422:
            fail(f"lookalike email {email!r} through the API: {status}, expected 422")
    csrf, cookies = form_visit(base, "/signup")
    for email in lookalikes:
        fields = {"csrf": csrf, "email": email, "name": "R", "password": "fuzz-reader"}
        status, _ = form_post(base, "/signup", fields, cookies)
        if status != 422:
            fail(f"lookalike email {email!r} through the form: {status}, expected 422")
    for i, next_path in enumerate(["/\r\nX-Injected: y", "/a\u0000b", "/\u2028", "/\u007f"]):
        csrf, cookies = form_visit(base, "/signup")
        email = f"next{i}-{uuid.uuid4().hex}@fuzz.example"
        fields = {"csrf": csrf, "email": email, "name": "R\u0000" if i == 0 else "R", "password": "fuzz-reader", "next": next_path}
        status, location = form_post(base, "/signup", fields, cookies)
        expected = (422, None) if i == 0 else (303, "/")
        if (status, location if status == 303 else None) != expected:
            fail(f"control characters in a form ({next_path!r}): {status} {location!r}, expected {expected}")
    csrf, cookies = form_visit(base, "/login")
    status, _ = form_post(base, "/login", {"csrf": csrf, "email": "x@fuzz.example", "password": "p"}, cookies,
                          origin="http://evil.example")
    if status != 403:
        fail(f"a form from another origin: {status}, expected 403")
    print("probe [control characters in forms, lookalike identities, foreign origin]: done")


def snapshot(db):
    with sqlite3.connect(db) as conn:
        count = lambda table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        ids = lambda table: {row[0] for row in conn.execute(f"SELECT id FROM {table}")}
        return {
            "users": ids("users"),
            "books": ids("books"),
            "events": ids("events"),
            "applications": ids("applications"),
            "book_rows": {row[0]: row for row in conn.execute("SELECT * FROM books")},
            "stock": dict(conn.execute("SELECT event_id, remaining FROM event_stock")),
            "quantity": dict(conn.execute("SELECT id, quantity FROM events")),
            "won": dict(conn.execute("SELECT event_id, COUNT(*) FROM applications GROUP BY event_id")),
        }


# Crashes fixed before: named as such when they come back, still failures.
KNOWN = [
    ("normalise_isbn", "ISBN slicing on a multi-byte character (books.rs)"),
    ("src/routes/books.rs", "ISBN slicing on a multi-byte character (books.rs)"),
    ("src/search/", "search: highlighter case-mapping / query handling"),
    ("overflow", "page × size overflow"),
]


def read_log(log_path):
    """(access counts by (method, route, status), panics, other problems) of the log."""
    counts = collections.Counter()
    panics, problems = [], []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                problems.append(f"a log line is not JSON: {line.strip()[:200]}")
                continue
            fields = entry.get("fields", {})
            if entry.get("target") == "nanum::panic":
                panics.append(fields.get("panic", "").replace("\n", " ")[:400])
            elif entry.get("level") == "ERROR" and str(entry.get("target", "")).startswith("nanum"):
                problems.append(f"error logged: {line.strip()[:400]}")
            if entry.get("target") == "nanum::access":
                counts[(fields["method"], fields["route"], fields["status"])] += 1
    return counts, panics, problems


def access_counts(log_path):
    return read_log(log_path)[0]


def created_ids(har_paths):
    """What the 2xx answers say was created or deleted, from schemathesis' HAR records:
    {"users": created ids, …, "deleted_books": ids}."""
    created = collections.defaultdict(set)
    routes = [
        ("POST", re.compile(r"/api/v1/users$"), 201, "users", "id"),
        ("POST", re.compile(r"/api/v1/books$"), 201, "books", "id"),
        ("POST", re.compile(r"/api/v1/events$"), 201, "events", "id"),
        ("POST", re.compile(r"/api/v1/events/[^/]+/applications$"), 201, "applications", "application_id"),
    ]
    for path in har_paths:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)["log"]["entries"]
        for entry in entries:
            request, response = entry["request"], entry["response"]
            url = urllib.parse.urlsplit(request["url"]).path
            status = response["status"]
            if request["method"] == "DELETE" and status == 204:
                match = re.fullmatch(r"/api/v1/books/(\d+)", url)
                if match:
                    created["deleted_books"].add(int(match.group(1)))
            for method, pattern, ok, table, key in routes:
                if request["method"] == method and status == ok and pattern.search(url):
                    text = response.get("content", {}).get("text") or "null"
                    if response.get("content", {}).get("encoding") == "base64":
                        text = base64.b64decode(text).decode()
                    created[table].add(json.loads(text)[key])
    return created


def main():
    binary, venv_bin = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="nanum-fuzz-")
    db = os.path.join(work, "fuzz.db")
    log_path = os.path.join(work, "server.log")
    admin_password = uuid.uuid4().hex
    env = dict(
        os.environ,
        APP_ENV="test",
        RUST_LOG="info,sqlx=warn",
        APP__LOG__FORMAT="json",
        RUST_BACKTRACE="0",
        APP__DATABASE__URL=f"sqlite://{db}?mode=rwc",
        APP__SEARCH__INDEX_DIR=os.path.join(work, "index"),
        APP__SERVER__PORT="0",
        APP__AUTH__ADMIN_EMAIL="admin@fuzz.example",
        APP__AUTH__ADMIN_PASSWORD=admin_password,
    )
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = server.stdout.readline()
    if not line.startswith("nanum listening on "):
        print(open(log_path, encoding="utf-8").read()[-4000:])
        sys.exit(f"nanum did not start: {line!r}")
    base = line.split()[3]
    print(f"fuzzing {base} for about {SECONDS} s (log {log_path})", flush=True)
    try:
        run(base, db, log_path, venv_bin, admin_password, server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if failures:
        print(f"\nfuzz: {len(failures)} failure(s); the server log is {log_path}")
        sys.exit(1)
    print("fuzz: no 5xx, no dropped connection, answers match the document, rejected requests changed nothing")


def run(base, db, log_path, venv_bin, admin_password, server):
    # The document must be valid OpenAPI before anything is generated from it.
    spec = os.path.join(os.path.dirname(log_path), "openapi.json")
    with urllib.request.urlopen(base + "/api-docs/openapi.json", timeout=30) as response, open(spec, "wb") as out:
        out.write(response.read())
    if subprocess.run([os.path.join(venv_bin, "openapi-spec-validator"), spec]).returncode != 0:
        fail("the OpenAPI document does not validate")

    status, body = call(base, "POST", "/api/v1/auth/login", {"email": "admin@fuzz.example", "password": admin_password})
    assert status == 200, (status, body)
    admin = body["access_token"]
    reader_email = f"reader-{uuid.uuid4().hex}@fuzz.example"
    status, body = call(base, "POST", "/api/v1/users", {"email": reader_email, "password": "fuzz-reader", "name": "R"})
    assert status == 201, (status, body)
    status, body = call(base, "POST", "/api/v1/auth/login", {"email": reader_email, "password": "fuzz-reader"})
    assert status == 200, (status, body)
    reader = body["access_token"]
    # Something to find: a book and an event open now (ids 1), so ids the fuzzer picks hit.
    status, book = call(base, "POST", "/api/v1/books", {"title": "소년이 온다", "author": "한강"}, admin)
    assert status == 201, (status, book)
    status, event = call(
        base,
        "POST",
        "/api/v1/events",
        {"book_id": book["id"], "title": "나눔", "quantity": 5, "opens_at": "2020-01-01T00:00:00Z"},
        admin,
    )
    assert status == 201, (status, event)

    print("\n--- probes of crashes found before ---", flush=True)
    probe_known_crashes(base, admin)
    print("\n--- probes of request data the schema does not describe ---", flush=True)
    probe_abuse_classes(base)

    before = snapshot(db)
    counts_before = access_counts(log_path)
    har_paths = []
    for who, token, share in [("admin", admin, 0.6), ("reader", reader, 0.4)]:
        budget = max(5, int(SECONDS * share))
        har_paths.append(os.path.join(os.path.dirname(log_path), f"{who}.har"))
        command = [
            os.path.join(venv_bin, "schemathesis"),
            "run",
            spec,
            "--url",
            base,
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-time",
            str(budget),
            # One worker: hypothesis' lambda-description cache is not thread-safe on
            # Python 3.11 ("AST constructor recursion depth mismatch" runtime errors).
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--continue-on-failure",
            "--warnings",
            "off",
            "--report",
            "har",
            "--report-har-path",
            har_paths[-1],
        ]
        print(f"\n--- schemathesis as {who}, {budget} s ---", flush=True)
        # Hard stop well past the budget: a hung run is a failure, not a stuck CI.
        try:
            # Run in the work folder: schemathesis keeps a cache folder in its working directory.
            result = subprocess.run(
                command, timeout=budget + 60, env=dict(os.environ, NO_COLOR="1"), cwd=os.path.dirname(log_path)
            )
            if result.returncode != 0:
                fail(f"schemathesis as {who} found problems (exit {result.returncode}); see above")
        except subprocess.TimeoutExpired:
            fail(f"schemathesis as {who} ran past {budget + 60} s")
        if server.poll() is not None:
            fail(f"nanum exited with {server.returncode} during the {who} run")
            return

    after = snapshot(db)
    all_counts, panics, problems = read_log(log_path)
    counts = all_counts - counts_before
    for message in sorted(set(panics)):
        known = next((what for key, what in KNOWN if key in message), None)
        note = f" [known, fixed before: {known}]" if known else ""
        fail(f"the server panicked ({panics.count(message)}×): {message}{note}")
    for problem in problems[:10]:
        fail(problem)
    print(f"\n{sum(counts.values())} requests answered")
    for (method, route, status), n in sorted(counts.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {n:6d}  {status}  {method} {route}")
    server_errors = {k: n for k, n in counts.items() if k[2] >= 500}
    if server_errors:
        fail(f"5xx answers: {server_errors}")

    ok = lambda method, route, status: counts[(method, route, status)]
    # Exactly the rows the 2xx answers created (a replayed Idempotency-Key answers 201 with
    # the first request's id, so ids, not counts), minus the books a 204 deleted.
    created = created_ids(har_paths)
    for table in ["users", "books", "events", "applications"]:
        new = after[table] - before[table]
        gone = before[table] - after[table]
        expected_new = created[table] - before[table]
        expected_gone = created["deleted_books"] & before[table] if table == "books" else set()
        if table == "books":
            new |= created[table] & created["deleted_books"]  # created, then deleted
        print(f"{table}: {len(before[table])} → {len(after[table])}; 2xx answers created {len(expected_new)}")
        if new != expected_new:
            fail(f"{table}: rows {sorted(new ^ expected_new)[:20]} differ from what 2xx answers created")
        if gone != expected_gone:
            fail(f"{table}: rows {sorted(gone ^ expected_gone)[:20]} vanished without a 204")
    changed = [i for i, row in before["book_rows"].items() if after["book_rows"].get(i, row) != row]
    patched = ok("PATCH", "/api/v1/books/{id}", 200)
    if len(changed) > patched:
        fail(f"{len(changed)} existing books changed, but only {patched} PATCH answered 200")
    # Stock: copies given away = winners, for every event.
    for event_id, quantity in after["quantity"].items():
        remaining = after["stock"].get(event_id)
        won = after["won"].get(event_id, 0)
        if remaining is None or quantity - remaining != won:
            fail(f"event {event_id}: quantity {quantity}, remaining {remaining}, but {won} winners")


if __name__ == "__main__":
    main()
