"""Credentials in the configuration: kept, used, never shown.

A QuestDB client configuration (`sinks.questdb.conf`) may carry credentials: `password=` (HTTP basic
auth), `token=` (HTTP bearer token, or the TCP ECDSA private key), `token_x=` / `token_y=`. `ConfString`
holds such a string as a pydantic secret: `repr()`, `str()`, `model_dump_json()` and any error or log
line built from them show the configuration with those values replaced by `***`; only
`get_secret_value()` returns it whole, and only the sink that connects calls it.
"""

from __future__ import annotations

import re

from pydantic import Secret

#: QuestDB client configuration keys whose value is a credential
SECRET_KEYS = frozenset({"password", "token", "token_x", "token_y"})
#: what a credential's value is replaced with
MASK = "***"

# key=value; a value runs to the next single ';' (';;' is an escaped ';' inside a value)
_PAIR = re.compile(r"(?P<key>[A-Za-z0-9_]+)=(?P<value>(?:[^;]|;;)*)")


def redact_conf(conf: str) -> str:
    """`conf` with the value of every credential key (`SECRET_KEYS`) replaced by `MASK`."""
    schema, sep, rest = conf.partition("::")
    if not sep:
        rest, schema = conf, ""

    def mask(match: re.Match[str]) -> str:
        key = match["key"]
        return f"{key}={MASK}" if key.lower() in SECRET_KEYS else match[0]

    masked = _PAIR.sub(mask, rest)
    return f"{schema}{sep}{masked}"


class ConfString(Secret[str]):
    """A client configuration string whose credentials never show (see the module's docstring)."""

    def _display(self) -> str:
        return redact_conf(self.get_secret_value())
