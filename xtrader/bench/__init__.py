"""`xtrader bench`: xtrader against the machine's limits and against cryptofeed, on one generated feed.

One module per entry (`limits`: limit_recv and limit_parse, `hot_path`, `e2e`, `vs_cryptofeed` with
`cryptofeed_client`), the feed (`feed`), CPU accounting (`cpu`), the report shape and ratios (`report`) and
the runner (`runner`).
"""
