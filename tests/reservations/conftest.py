from tests.loans.support import assert_consistent, consistency, desk

__all__ = ["assert_consistent", "consistency", "desk"]
