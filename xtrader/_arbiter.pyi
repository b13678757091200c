from typing import Any

def offer(
    tables: dict[Any, dict[Any, int]],
    orders: dict[Any, list[Any]],
    keys: list[Any],
    now_ns: int,
    limit: int,
    capacity: int,
) -> tuple[list[bool], int]: ...
