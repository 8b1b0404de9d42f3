"""The fuzz step of scripts/fuzz (run it through that script, which makes the venv).

Starts `nanum serve` on a fresh SQLite database (JSON logs), validates its OpenAPI
document, seeds an open event, snapshots the database, runs schemathesis with an admin and
then a reader token for a bounded time, and compares the database with what the 2xx
answers of the access log account for: a rejected request must change nothing.

usage: fuzz_check.py NANUM_BINARY VENV_BIN_DIR
"""

import collections
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
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


def snapshot(db):
    with sqlite3.connect(db) as conn:
        count = lambda table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return {
            "users": count("users"),
            "books": count("books"),
            "events": count("events"),
            "applications": count("applications"),
            "book_rows": {row[0]: row for row in conn.execute("SELECT * FROM books")},
            "stock": dict(conn.execute("SELECT event_id, remaining FROM event_stock")),
            "quantity": dict(conn.execute("SELECT id, quantity FROM events")),
            "won": dict(conn.execute("SELECT event_id, COUNT(*) FROM applications GROUP BY event_id")),
        }


def access_counts(log_path):
    """(method, route, status) → count, from the JSON access lines."""
    counts = collections.Counter()
    with open(log_path, encoding="utf-8") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                fail(f"a log line is not JSON: {line.strip()[:200]}")
                continue
            if entry.get("level") == "ERROR":
                fail(f"error logged: {line.strip()[:400]}")
            if entry.get("target") == "nanum::access":
                f = entry["fields"]
                counts[(f["method"], f["route"], f["status"])] += 1
    return counts


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

    before = snapshot(db)
    counts_before = access_counts(log_path)
    for who, token, share in [("admin", admin, 0.6), ("reader", reader, 0.4)]:
        budget = max(5, int(SECONDS * share))
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
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--continue-on-failure",
            "--warnings",
            "off",
        ]
        print(f"\n--- schemathesis as {who}, {budget} s ---", flush=True)
        # Hard stop well past the budget: a hung run is a failure, not a stuck CI.
        try:
            result = subprocess.run(command, timeout=budget + 60, env=dict(os.environ, NO_COLOR="1"))
            if result.returncode != 0:
                fail(f"schemathesis as {who} found problems (exit {result.returncode}); see above")
        except subprocess.TimeoutExpired:
            fail(f"schemathesis as {who} ran past {budget + 60} s")
        if server.poll() is not None:
            fail(f"nanum exited with {server.returncode} during the {who} run")
            return

    after = snapshot(db)
    counts = access_counts(log_path) - counts_before
    print(f"\n{sum(counts.values())} requests answered")
    for (method, route, status), n in sorted(counts.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {n:6d}  {status}  {method} {route}")
    server_errors = {k: n for k, n in counts.items() if k[2] >= 500}
    if server_errors:
        fail(f"5xx answers: {server_errors}")

    ok = lambda method, route, status: counts[(method, route, status)]
    expected = {
        "users": ok("POST", "/api/v1/users", 201),
        "books": ok("POST", "/api/v1/books", 201) - ok("DELETE", "/api/v1/books/{id}", 204),
        "events": ok("POST", "/api/v1/events", 201),
        "applications": ok("POST", "/api/v1/events/{id}/applications", 201),
    }
    for table, delta in expected.items():
        got = after[table] - before[table]
        print(f"{table}: {before[table]} → {after[table]} (accepted requests account for {delta:+d})")
        if got != delta:
            fail(f"{table} changed by {got:+d}, but the 2xx answers account for {delta:+d}")
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
