from starlette.testclient import TestClient


def test_health_does_not_need_auth(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_database_answers(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
