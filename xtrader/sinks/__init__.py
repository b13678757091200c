"""Sinks: Parquet files (`parquet.ParquetSink`) and QuestDB (`questdb.QuestDBSink`, spilling to `spill.Spill`).

Plain objects without Ray; `actors/sink.py` hosts them.
"""
