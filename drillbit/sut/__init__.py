"""The reference system under test: a small central-limit-order-book trading API on PostgreSQL."""

__all__: list[str] = []
