"""A Deribit websocket session: JSON-RPC requests answered in the order sent (EXCHANGES.md 4.1-4.5).

Responses: ``{"jsonrpc":"2.0","id":..,"result":..,"usIn":..,"usOut":..,"usDiff":..,"testnet":false}``
(µs); errors carry ``"error":{"message":..,"code":..[,"data":{"reason":..,"param":..}]}`` in the same
envelope. Codes: -32700 parse error, -32600 invalid request or a frame over 32 kB, -32601 method
not found, -32602 invalid params, 10028 too_many_requests (then the session is closed), 13009
unauthorized (private/* without auth), 13778 raw_subscriptions_not_available_for_unauthorized
(the whole subscribe request fails when any channel asks for ``raw``).

Choices made where the docs are silent:
  * Unknown channels are left out of the subscribe result, with no error (the docs say to check
    the result; code 11052's description says the same). Unsubscribe lists only the channels it
    really removed.
  * Subscribing a channel already subscribed lists it again and sends nothing new.
  * Heartbeats follow the model Deribit's FIX API documents (Heartbeat / TestRequest): every
    ``interval`` seconds the server sends ``test_request`` if the client sent nothing since the
    last one, else ``heartbeat``. A test_request not answered by ``public/test`` within one
    interval (setting ``test_request_timeout_s``) closes the connection (1000).
  * Credits are counted per connection (the venue pools them per IP or sub-account).
  * ``public/auth`` accepts any non-empty credentials; its access token then also works as
    ``access_token`` in private/* params.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .connection import Connection
from .faults import Faults
from .truth import Frame

if TYPE_CHECKING:
    from .deribit import Channel, Deribit

HEARTBEAT = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
#: platform channels (https://docs.deribit.com/subscriptions/platform/): accepted, pushed on a maintenance
PLATFORM = ("platform_state", "platform_state.public_methods_state")
TEST_REQUEST = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
TOKEN_LIFETIME_S = 900
_SUBSCRIBE_METHODS = ("subscribe", "unsubscribe", "unsubscribe_all")

Action = Callable[[], None]
Answer = tuple[Any, Action | None]  # result, and what to do once the answer is on the wire


class RpcError(Exception):
    """A JSON-RPC error answer: ``{"message":..,"code":..,"data":..}``."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None, http_status: int = 400) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.data is not None:
            body["data"] = self.data
        return body


def invalid_params(param: str, reason: str) -> RpcError:
    return RpcError(-32602, "Invalid params", {"reason": reason, "param": param})


def now_us() -> int:
    return time.time_ns() // 1000


def envelope(rid: Any, us_in: int, *, result: Any = None, error: RpcError | None = None, has_id: bool = False) -> Any:
    """A JSON-RPC response: ``jsonrpc, id, result|error, usIn, usOut, usDiff, testnet`` (the capture's order)."""
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if has_id:
        body["id"] = rid
    if error is None:
        body["result"] = result
    else:
        body["error"] = error.to_json()
    us_out = max(us_in, now_us())
    body["usIn"] = us_in
    body["usOut"] = us_out
    body["usDiff"] = us_out - us_in
    body["testnet"] = False
    return body


class DeribitConnection(Connection):
    """One client websocket: its channels, authentication, heartbeat and request credits."""

    venue: Deribit

    def __init__(self, venue: Deribit, path: str, faults: Faults) -> None:
        super().__init__(venue, path, faults)
        self.channels: dict[str, Channel] = {}
        self.platform: set[str] = set()  # platform channels subscribed
        self.authenticated = False
        self.heartbeat_s: float | None = None
        self._heard = False  # any request since the last heartbeat tick
        self._heartbeat: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._credits = float(venue.credit_pool)
        self._credits_at: float | None = None
        for name in ("requests", "heartbeats", "test_requests"):
            self.stats.notes[name] = 0

    # -- framework hooks ----------------------------------------------------------------

    def render(self, stream: str, frame: Frame) -> bytes:
        return self.venue.render(stream, frame)

    def on_close(self) -> None:
        self._stop_heartbeat()
        for channel in self.channels:
            self.venue.unsubscribe(self, channel)
        self.channels.clear()
        self.venue.connections.discard(self)

    async def on_text(self, text: str) -> None:
        if self.closing is not None:
            return  # the session is over (e.g. after 10028): later requests get no answer
        us_in = now_us()
        self._heard = True
        self.stats.notes["requests"] += 1
        reply, after = self._handle(text, us_in)
        await self.send_control(orjson.dumps(reply))
        if after is not None:
            after()

    # -- requests ------------------------------------------------------------------------

    def _handle(self, text: str, us_in: int) -> tuple[Any, Action | None]:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return envelope(None, us_in, error=RpcError(-32700, "Parse error"), has_id=True), None
        if not isinstance(msg, dict):
            return envelope(None, us_in, error=RpcError(-32600, "Invalid Request"), has_id=True), None
        has_id, rid = "id" in msg, msg.get("id")

        def fail(exc: RpcError, after: Action | None = None) -> tuple[Any, Action | None]:
            return envelope(rid, us_in, error=exc, has_id=has_id), after

        if len(text.encode()) > self.venue.max_frame_bytes:
            return fail(RpcError(-32600, "request entity too large"))
        method, params = msg.get("method"), msg.get("params")
        if params is None:
            params = {}
        if not isinstance(method, str):
            return fail(RpcError(-32601, "Method not found"))
        if not isinstance(params, dict):
            return fail(invalid_params("params", "must be an object"))
        venue = self.venue
        cost = venue.subscribe_cost if method.rpartition("/")[2] in _SUBSCRIBE_METHODS else venue.request_cost
        if not self._charge(cost):
            return fail(
                RpcError(10028, "too_many_requests"), lambda: self.kill("too_many_requests: credits used up", 1008)
            )
        try:
            result, after = self._dispatch(method, params)
        except RpcError as exc:
            return fail(exc)
        return envelope(rid, us_in, result=result, has_id=has_id), after

    def _dispatch(self, method: str, params: dict[str, Any]) -> Answer:
        scope, _, name = method.partition("/")
        if scope == "private":
            authed = self._authorized(params)
            if name in _SUBSCRIBE_METHODS:
                if not authed:
                    raise RpcError(13009, "unauthorized")
                return self._channel_method(name, params, authed)
            raise RpcError(-32601, "Method not found")
        if scope == "public" and name in _SUBSCRIBE_METHODS:
            return self._channel_method(name, params, self.authenticated)
        if method == "public/set_heartbeat":
            return self._set_heartbeat(params)
        if method == "public/disable_heartbeat":
            return "ok", self._stop_heartbeat
        if method == "public/test":
            self._answered()
        if method == "public/auth":
            return self._auth(params), None
        return self.venue.call(method, params), None

    def _channel_method(self, name: str, params: dict[str, Any], authed: bool) -> Answer:
        if name == "unsubscribe_all":
            for channel in self.channels:
                self.venue.unsubscribe(self, channel)
            self.channels.clear()
            return "ok", None
        raw = params.get("channels")
        if raw is None:
            raise invalid_params("channels", "must be present")
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            raise invalid_params("channels", "must be a list of strings")
        channels = list(dict.fromkeys(raw))
        if name == "unsubscribe":
            removed = [c for c in channels if c in self.channels]
            for channel in removed:
                del self.channels[channel]
                self.venue.unsubscribe(self, channel)
            return removed, None
        if not authed and any(c.rpartition(".")[2] == "raw" for c in channels):
            raise RpcError(13778, "raw_subscriptions_not_available_for_unauthorized")
        platform = [c for c in channels if c in PLATFORM]
        self.platform.update(platform)
        accepted = [(c, spec) for c in channels if (spec := self.venue.resolve(c)) is not None]

        def attach() -> None:
            # After the ack: the snapshot is taken now, so the changes that follow chain onto it.
            for channel, spec in accepted:
                if channel not in self.channels and self.closing is None:
                    self.channels[channel] = spec
                    self.venue.attach(self, channel, spec)

        return platform + [c for c, _ in accepted], attach

    def _authorized(self, params: dict[str, Any]) -> bool:
        if self.authenticated:
            return True
        token = params.get("access_token")
        return isinstance(token, str) and self.venue.tokens.get(token, 0.0) > time.time()

    def _auth(self, params: dict[str, Any]) -> dict[str, Any]:
        grant = params.get("grant_type")
        required = {
            "client_credentials": ("client_id", "client_secret"),
            "client_signature": ("client_id", "timestamp", "signature", "nonce"),
            "refresh_token": ("refresh_token",),
        }
        if grant is None:
            raise invalid_params("grant_type", "must be present")
        if grant not in required:
            raise invalid_params("grant_type", "wrong format")
        for name in required[grant]:
            value = params.get(name)
            if value is None:
                raise invalid_params(name, "must be present")
            if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
                raise RpcError(13004, "invalid_credentials")
        tokens = self.venue.tokens
        if grant == "refresh_token" and tokens.get(params["refresh_token"], 0.0) <= time.time():
            raise RpcError(13009, "unauthorized")
        now_ms = int(time.time() * 1000)
        access, refresh = f"{now_ms}.{secrets.token_urlsafe(24)}", f"{now_ms}.{secrets.token_urlsafe(24)}"
        expiry = time.time() + TOKEN_LIFETIME_S
        tokens[access] = tokens[refresh] = expiry
        self.authenticated = True
        return {
            "token_type": "bearer",
            "scope": "connection mainaccount",
            "refresh_token": refresh,
            "expires_in": TOKEN_LIFETIME_S,
            "enabled_features": [],
            "access_token": access,
        }

    def _charge(self, cost: int) -> bool:
        """Take `cost` credits from a pool refilled continuously; False when it runs dry."""
        venue = self.venue
        now = asyncio.get_running_loop().time()
        if self._credits_at is not None:
            self._credits = min(
                float(venue.credit_pool), self._credits + (now - self._credits_at) * venue.credit_refill_per_s
            )
        self._credits_at = now
        if self._credits < cost:
            return False
        self._credits -= cost
        return True

    async def maintenance(self) -> None:
        """A maintenance begins: platform_state subscribers are told, then the connection is closed."""
        if "platform_state" in self.platform:
            data = b'{"maintenance":true}'
            await self.send_control(
                b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"platform_state","data":' + data + b"}}"
            )
        await asyncio.sleep(0.05)
        self.kill("maintenance", 1001)

    # -- heartbeat -----------------------------------------------------------------------

    def _set_heartbeat(self, params: dict[str, Any]) -> Answer:
        interval = params.get("interval")
        if interval is None:
            raise invalid_params("interval", "must be present")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise invalid_params("interval", "must be a number")
        if interval < self.venue.min_heartbeat_s:
            raise invalid_params("interval", f"must be greater or equal to {self.venue.min_heartbeat_s:g}")

        def start() -> None:
            self._stop_heartbeat()
            if self.closing is not None:
                return
            self.heartbeat_s = float(interval)
            self._heard = False
            task = asyncio.get_running_loop().create_task(self._heartbeats(float(interval)))
            task.add_done_callback(self._task_done)
            self._heartbeat = task

        return "ok", start

    def _stop_heartbeat(self) -> None:
        self.heartbeat_s = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._answered()

    def _answered(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    async def _heartbeats(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.venue.test_request_timeout_s or interval
        while self.closing is None:
            await asyncio.sleep(interval)
            if self.closing is not None or self.stalled:
                continue  # a stalled server sends no heartbeats and expects no answers
            if self._heard:
                self.stats.notes["heartbeats"] += 1
                message = HEARTBEAT
            else:
                self.stats.notes["test_requests"] += 1
                message = TEST_REQUEST
                if self._deadline is None:
                    self._deadline = loop.call_later(timeout, self._unanswered)
            self._heard = False
            await self.send_control(message)

    def _unanswered(self) -> None:
        self._deadline = None
        if not self.stalled:
            self.kill("test_request not answered with public/test", 1000)
