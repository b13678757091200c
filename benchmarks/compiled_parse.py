"""Does compiling the Binance hot parse with Cython pay? The typed path (`xtrader.venues.binance._typed`: msgspec
decoding, then appends to the column lists), as it is and compiled, over the bench feed's frames.

    pip install cython            # not a project dependency: this benchmark alone needs it (and a C compiler)
    python benchmarks/compiled_parse.py [--rounds 7]

The compiled version is the same code with C-level list appends (`PyList_Append`) and typed locals; it works on
the same Python objects (msgspec structs, strings, ints), so it says what compiling the object-level code is worth,
not what a path without Python objects (bytes to C arrays) would be. Each figure is CPU µs per frame, the best of
`--rounds` passes; both produce the same columns (checked before timing).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xtrader.bench.feed import frames
from xtrader.venues import binance

SOURCE = """
# cython: language_level=3, boundscheck=False, wraparound=False
from cpython.list cimport PyList_Append
import msgspec

def make(_Frame, _Depth, _AggTrade, dict partials, is_partial):
    decode = msgspec.json.Decoder(_Frame).decode
    DecodeError = msgspec.DecodeError

    def typed(frame, long long scale, now, out):
        cdef list price, size, bids, asks
        cdef tuple level
        try:
            message = decode(frame)
        except (DecodeError, RecursionError):
            return False
        data = message.data
        kind = type(data)
        if kind is _Depth:
            ts = data.T
            if ts is None:
                ts = data.E
                if ts is None:
                    return False
            stream = message.stream
            partial = partials.get(stream)
            if partial is None:
                partial = partials[stream] = is_partial(stream)
            l2 = out.l2
            price = l2.price
            size = l2.size
            bids = data.b
            asks = data.a
            for level in bids:
                PyList_Append(price, level[0]); PyList_Append(size, level[1])
            for level in asks:
                PyList_Append(price, level[0]); PyList_Append(size, level[1])
            PyList_Append(l2.symbol, data.s)
            PyList_Append(l2.exchange_ts, ts * scale)
            PyList_Append(l2.receive_ts, now)
            PyList_Append(l2.seq, data.u)
            PyList_Append(l2.prev_seq, data.pu)
            PyList_Append(l2.first_seq, data.U)
            PyList_Append(l2.is_snapshot, partial)
            PyList_Append(l2.checksum, None)
            PyList_Append(l2.bid_rows, len(bids))
            PyList_Append(l2.ask_rows, len(asks))
            return True
        if kind is not _AggTrade:
            return False  # not on the bench feed
        trades = out.trades
        PyList_Append(trades.symbol, data.s)
        PyList_Append(trades.exchange_ts, data.T * scale)
        PyList_Append(trades.receive_ts, now)
        PyList_Append(trades.trade_id, data.a)
        PyList_Append(trades.side, "sell" if data.m else "buy")
        PyList_Append(trades.price, data.p)
        PyList_Append(trades.size, data.q)
        return True
    return typed
"""


def compiled() -> Callable[..., bool]:
    from Cython.Build import cythonize  # type: ignore[import-not-found]
    from setuptools import Distribution, Extension

    build = Path(tempfile.mkdtemp(prefix="xtrader-cython-"))
    atexit.register(shutil.rmtree, build, True)
    (build / "typed_parse.pyx").write_text(SOURCE)
    dist = Distribution({"ext_modules": cythonize([Extension("typed_parse", [str(build / "typed_parse.pyx")])])})
    command = dist.get_command_obj("build_ext")
    command.build_lib = command.build_temp = str(build)  # type: ignore[attr-defined]
    command.ensure_finalized()
    command.run()
    path = next(build.glob("typed_parse*.so"))
    spec = importlib.util.spec_from_file_location("typed_parse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(binance._Frame, binance._Depth, binance._AggTrade, {}, binance._is_partial)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data, _ = frames(20_000, 3)
    venue = binance.BinanceFutures()
    native = compiled()

    def best(parse: Callable[..., bool]) -> float:
        fastest = float("inf")
        for _ in range(args.rounds):
            out = venue.columns()
            start = time.process_time()
            for frame in data:
                parse(frame, 1_000_000, 0, out)
            fastest = min(fastest, time.process_time() - start)
        return fastest / len(data) * 1e6

    a, b = venue.columns(), venue.columns()
    for frame in data:
        assert binance._typed(frame, 1_000_000, 0, a) and native(frame, 1_000_000, 0, b)
    assert all(getattr(a.l2, n) == getattr(b.l2, n) for n in a.l2.__slots__ if n != "keep_text")
    assert all(getattr(a.trades, n) == getattr(b.trades, n) for n in ("symbol", "trade_id", "price", "size", "side"))
    decode = binance._decode_typed

    def decode_only(frame: bytes, *_: object) -> bool:
        decode(frame)
        return True

    rows = [("msgspec decode only", best(decode_only)), ("_typed", best(binance._typed)), ("compiled", best(native))]
    for name, us in rows:
        print(f"{name:>20}: {us:.3f} µs per frame")
    print(f"compiled / _typed: {rows[2][1] / rows[1][1]:.2f} (CPU time; < 1 is a gain)")


if __name__ == "__main__":
    main()
