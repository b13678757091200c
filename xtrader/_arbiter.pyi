from typing import Any

def offer(
    tables: dict[Any, dict[Any, int]], keys: list[Any], now_ns: int, limit: int
) -> tuple[list[bool], int, list[dict[Any, int]]]: ...
