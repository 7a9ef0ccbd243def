"""What expires is deleted by the scan, by the service's clock: sessions, login attempts and
idempotency keys (their TTL indexes do it too, at each engine's own pace)."""

import uuid
from datetime import timedelta
from typing import Any

from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from tests.conftest import Account, login

API = "/api/v1"


def test_the_scan_deletes_what_has_expired(
    client: TestClient, member: Account, admin: Account, raw_db: Any
) -> None:
    wrong = client.post(
        f"{API}/auth/login", data={"username": member.email, "password": "not the password"}
    )
    assert wrong.status_code == 401
    key = uuid.uuid4().hex
    kept = client.post(
        f"{API}/books/{ObjectId()}/reservations",
        headers={**member.headers, "Idempotency-Key": key},
    )
    assert kept.status_code == 404
    mine = {"user_id": ObjectId(member.id)}
    assert raw_db.sessions.count_documents(mine) >= 1
    assert raw_db.login_attempts.count_documents({"email": member.email}) >= 1
    assert raw_db.idempotency_keys.count_documents({}) >= 1

    clock.advance(timedelta(days=31))
    fresh = login(client, admin.email, admin.password)
    run = client.post(
        f"{API}/admin/notifications/run",
        headers={"Authorization": f"Bearer {fresh['access_token']}"},
    )
    assert run.status_code == 200, run.text

    assert raw_db.sessions.count_documents(mine) == 0
    assert raw_db.login_attempts.count_documents({"email": member.email}) == 0
    assert raw_db.idempotency_keys.count_documents({}) == 0
    # The session just opened has not expired, and still works.
    assert raw_db.sessions.count_documents({"user_id": ObjectId(admin.id)}) == 1
    me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200
