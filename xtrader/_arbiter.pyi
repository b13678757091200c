from typing import Any

def offer(
    tables: dict[Any, dict[Any, int]],
    orders: dict[Any, list[Any]],
    keys: list[Any],
    now_ns: int,
    limit: int,
    capacity: int,
    table: Any = ...,
) -> tuple[list[bool], int]: ...
def mix_int64(h: Any, values: Any, valid: Any, offset: int) -> None: ...
def str_words(out: Any, offsets: Any, data: Any, offset: int) -> None: ...
