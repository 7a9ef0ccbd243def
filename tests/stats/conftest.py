import pytest
from starlette.testclient import TestClient

from tests.conftest import Account
from tests.notifications.conftest import Desk


@pytest.fixture
def desk(client: TestClient, admin: Account, librarian: Account) -> Desk:
    return Desk(client, admin, librarian)
