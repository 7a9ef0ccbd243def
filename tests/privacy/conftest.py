from tests.loans.support import desk

__all__ = ["desk"]
