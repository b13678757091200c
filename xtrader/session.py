"""Sans-I/O state of one websocket connection: what to send, what was confirmed, when to ping or give up.

The connector feeds in what happened (the link opened, a frame or a server
ping arrived, the venue's control events, the time) and carries out the
actions it gets back: `Send` a frame, `Reconnect`, `Record` an events row,
handle `Refused` subscriptions. No sockets, no clock reads: tests drive it
with a fake monotonic time.

Requests: the venue splits a subscription change into requests
(`Venue.request_groups`), each given the next free id; a request sent as
several frames reuses its id (OKX) or numbers on from it, so every id in
[id, id + frames) maps back to it. Each reply (ack or error) covers the
subscriptions the venue says it does (`Venue.reply_covers`: the channels a
Deribit result lists, the arg of an OKX ack or error, the whole request on
Binance). A request is settled once all its expected replies came
(`Venue.replies_expected`), or at its ack timeout after an error: only what no
ack confirmed is refused then. One bad symbol never refuses the others.
Connection setup (Deribit's `set_heartbeat`) is a request of its own.

Limits (`xtrader.budget`): each session (= connection) has the venue's request
budget (`Venue.request_budget`, OKX: 480 subscribe/unsubscribe requests per
hour). Every subscribe/unsubscribe frame is charged to it; a resubscribe that
would eat into the last `RESERVE` of it is not sent but answered with `Wait`
(the connector tries again when the budget allows, and says so). A "too many
requests" error (`Venue.retryable`: OKX 60014, Deribit 10028) is never a
refusal: the subscriptions are asked again after a per-symbol backoff, within
the budget. Deribit's platform state (`pause` / `resume` controls: maintenance,
public methods disabled) pauses the session: no request goes out until it
resumes, and `paused` tells the connector not to hammer the venue with
reconnects meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from xtrader.budget import Backoff, Window
from xtrader.errors import ConfigError, SubscriptionError
from xtrader.retry import Watchdog
from xtrader.venues.base import Connection, Control, Keepalive, Subscription, Venue

_NS = 1_000_000_000
_FAR = 1 << 62  # a deadline that never comes
#: requests of the hourly budget a resync may not take: kept for subscription changes and retries
RESERVE = 48
#: while the venue is paused, a resync asks again after this long (one events row each time)
PAUSED_RETRY_S = 30.0
#: subscribe/unsubscribe operations charged to the request budget
_BUDGETED = frozenset({"open", "subscribe", "unsubscribe"})


class Send(NamedTuple):
    """Send this frame on the connection (`op`: the request it belongs to, for the venue's pacer)."""

    frame: bytes
    op: str = ""


class Wait(NamedTuple):
    """The request budget is spent: `symbol`'s resync waits `wait_ns` (ask again then)."""

    symbol: str
    wait_ns: int
    reason: str


class Reconnect(NamedTuple):
    """Replace the connection. graceful: it still works (a shutdown notice), so open the new one first."""

    reason: str
    graceful: bool


class Record(NamedTuple):
    """Write an events row (kind is one of schema.EVENT_KINDS)."""

    kind: str
    detail: str
    symbol: str | None = None


class Refused(NamedTuple):
    """The venue refused these subscriptions; they were dropped from the connection."""

    subscriptions: tuple[Subscription, ...]
    error: SubscriptionError


Action = Send | Reconnect | Record | Refused | Wait


@dataclass
class SessionStats:
    """Control traffic of one session (kept across reconnects)."""

    opens: int = 0
    requests: int = 0
    acks: int = 0
    errors: int = 0
    refused: int = 0
    pongs: int = 0
    heartbeats: int = 0
    test_requests: int = 0
    pings_sent: int = 0
    shutdowns: int = 0
    notices: int = 0
    unknown: int = 0
    stale: int = 0
    unanswered: int = 0
    budget_waits: int = 0
    too_frequent: int = 0
    retries: int = 0
    pauses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Request:
    request_id: int
    op: str  # setup, open, subscribe, unsubscribe, reply
    subscriptions: tuple[Subscription, ...]
    sent_ns: int
    expected: int = 1  # replies that settle it
    confirmed: bool = False  # settled: every expected reply came (or it was given up)
    reported: bool = False
    replies: int = 0
    acked: set[Subscription] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    retrying: set[Subscription] = field(default_factory=set)  # a "too many requests" answer: asked again later

    @property
    def subscribing(self) -> bool:
        return self.op in ("open", "subscribe") and bool(self.subscriptions)


@dataclass
class Session:
    """One websocket connection's protocol state.

    Args:
        venue: the venue spoken.
        connection: the planned connection; runtime (un)subscriptions replace it.
        keepalive: overrides `venue.keepalive()` (tests use short timeouts).
        ack_timeout_s: a request unanswered this long is reported (once) as an error event.
        budget: the connection's request budget (None: `venue.request_budget()`).
        backoff: per-symbol delays of retries after "too many requests".
    """

    venue: Venue
    connection: Connection
    keepalive: Keepalive | None = None
    ack_timeout_s: float = 10.0
    stats: SessionStats = field(default_factory=SessionStats)
    #: subscriptions the venue confirmed on the current link
    acked: set[Subscription] = field(default_factory=set)
    #: refused subscriptions and the venue's reason (never retried)
    refused: dict[Subscription, str] = field(default_factory=dict)
    #: set when every subscription was refused: the connection has no purpose
    failed: SubscriptionError | None = None
    budget: Window | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=2.0, cap_s=120.0, floor_s=1.0))
    #: why the venue asked for a pause (maintenance, public methods disabled); None: not paused
    paused: str | None = None
    #: no reconnect before this monotonic time (the venue said its credits ran out); 0: none
    cooldown_ns: int = 0

    def __post_init__(self) -> None:
        if self.budget is None:
            self.budget = self.venue.request_budget()
        self._retry: dict[Subscription, int] = {}  # subscription -> when to ask again
        self.rules: Keepalive = self.keepalive or self.venue.keepalive()
        self.is_open = False
        self._pending: dict[int, _Request] = {}
        self._next_id = 1
        self._watchdog = Watchdog(self.rules.stale_s)
        self._ping_outstanding = False
        self._stale_reported = False

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self.connection.subscriptions

    def pending(self) -> int:
        """Requests sent and not yet confirmed or refused."""
        return len({id(r) for r in self._pending.values() if not r.confirmed})

    # -- link lifecycle -------------------------------------------------------------

    def open(self, now_ns: int) -> list[Action]:
        """The websocket is open: the frames to send first (subscriptions not in the URL, heartbeat setup)."""
        self.is_open = True
        self.stats.opens += 1
        self.acked = set()
        self._pending.clear()
        self._watchdog = Watchdog(self.rules.stale_s, now_ns)
        self._ping_outstanding = False
        self._stale_reported = False
        self._retry.clear()  # the open subscribes everything
        connection = self.connection
        actions = self._request("setup", (), now_ns, self.venue.setup_messages)
        opening = self._requests("open", connection.subscriptions, now_ns, self._initial)
        if not opening:  # subscribed by the URL: live as soon as the link is
            self.acked = set(connection.subscriptions)
        return actions + opening

    def _initial(self, group: tuple[Subscription, ...], request_id: int) -> list[bytes]:
        return self.venue.initial_messages(Connection(self.connection.url, group), request_id)

    def closed(self) -> None:
        """The websocket closed; unanswered requests die with it."""
        self.is_open = False
        self.acked = set()
        self._pending.clear()

    # -- what arrived ---------------------------------------------------------------

    def on_frame(self, now_ns: int) -> None:
        """Any frame arrived (data or control): the link is alive. Hot path."""
        self._watchdog.feed(now_ns)
        self._ping_outstanding = False

    def silent_ns(self, now_ns: int) -> int:
        """Nanoseconds since the link last showed life (a frame read, a server ping)."""
        return self._watchdog.silent_ns(now_ns)

    def on_server_ping(self, now_ns: int) -> None:
        """A websocket ping from the server (the library answers it): alive, no data."""
        self._watchdog.feed(now_ns)

    def on_controls(self, controls: Sequence[Control], now_ns: int) -> list[Action]:
        """React to the venue's control events from one frame."""
        actions: list[Action] = []
        for control in controls:
            actions.extend(self._on_control(control, now_ns))
        return actions

    def _on_control(self, control: Control, now_ns: int) -> list[Action]:
        kind, stats = control.kind, self.stats
        if kind == "ack":
            stats.acks += 1
            return self._confirm(control)
        if kind == "error":
            stats.errors += 1
            cooldown = self.venue.cooldown_s(control)
            if cooldown is not None:  # e.g. Deribit 10028: the venue ends the session; wait for credits
                self.cooldown_ns = max(self.cooldown_ns, now_ns + int(cooldown * _NS))
            return self._error(control, now_ns)
        if kind == "pong":
            stats.pongs += 1
        elif kind == "heartbeat":
            stats.heartbeats += 1
        elif kind == "test_request":
            stats.test_requests += 1
            return self._request("reply", (), now_ns, lambda rid: _some(self.venue.reply(control, rid)))
        elif kind == "shutdown":
            stats.shutdowns += 1
            return [Reconnect(f"venue shutdown notice: {control.detail}", graceful=True)]
        elif kind == "notice":
            stats.notices += 1
            return [Record("unknown", f"notice: {control.detail}"[:500])]
        elif kind == "pause":
            if self.paused is None:
                stats.pauses += 1
            self.paused = control.detail or "venue asked for a pause"
            return [Record("error", f"venue paused: {self.paused}; no requests until it resumes"[:500])]
        elif kind == "resume":
            if self.paused is not None:
                self.paused = None
                return [Record("connect", f"venue resumed: {control.detail}"[:500])]
        else:
            stats.unknown += 1
        return []

    def _confirm(self, control: Control) -> list[Action]:
        request = self._pending.get(_as_id(control.request_id))
        if request is None or request.confirmed:
            return []
        if request.op == "unsubscribe":  # the first reply settles it: the streams stop either way
            request.confirmed = True
            self.acked.difference_update(request.subscriptions)
            return []
        if not request.subscribing:
            request.confirmed = True
            return []
        covered = self.venue.reply_covers(control, request.subscriptions)
        request.replies += 1
        request.acked.update(request.subscriptions if covered is None else covered)
        self.acked.update(s for s in request.acked if s in self.connection.subscriptions)
        return self._settle(request) if request.replies >= request.expected else []

    def _error(self, control: Control, now_ns: int) -> list[Action]:
        request = self._pending.get(_as_id(control.request_id))
        if self.venue.retryable(control):
            self.stats.too_frequent += 1
            if request is not None and not request.confirmed and request.subscribing:
                return self._too_frequent(request, control, now_ns)
        if request is None or request.confirmed or not request.subscribing:
            what = f" (request {request.request_id} {request.op})" if request is not None else ""
            return [Record("error", f"venue error{what}: {control.detail}"[:500])]
        request.replies += 1
        covered = self.venue.reply_covers(control, request.subscriptions)
        actions: list[Action] = []
        if covered is None:  # one of the request's subscriptions, the venue does not say which
            request.errors.append(control.detail)
        else:
            actions += self._refuse(tuple(s for s in covered if s not in request.acked), control.detail)
        if request.replies >= request.expected:
            actions += self._settle(request)
        return actions

    def _too_frequent(self, request: _Request, control: Control, now_ns: int) -> list[Action]:
        """ "Too many requests" for (part of) a subscribe request: ask again after a per-symbol backoff."""
        request.replies += 1
        covered = self.venue.reply_covers(control, request.subscriptions)
        again = [s for s in (request.subscriptions if covered is None else covered) if s not in request.acked]
        delay = 0
        for subscription in again:
            request.retrying.add(subscription)
            wait = self.backoff.next_ns(subscription.symbol)
            delay = max(delay, wait)
            self._retry[subscription] = max(self._retry.get(subscription, 0), now_ns + wait)
        actions: list[Action] = [
            Record(
                "error",
                f"venue says too many requests (request {request.request_id}, {len(again)} subscription(s)): "
                f"asked again in {delay / _NS:.1f} s, not a refusal: {control.detail}"[:500],
            )
        ]
        if request.replies >= request.expected:
            actions += self._settle(request)
        return actions

    def _settle(self, request: _Request) -> list[Action]:
        """Every reply of a subscribe request came (or it timed out after an error): refuse what none confirmed."""
        request.confirmed = True
        actions: list[Action] = []
        unconfirmed = tuple(
            s
            for s in request.subscriptions
            if s not in request.acked and s not in self.refused and s not in request.retrying
        )
        if unconfirmed:
            detail = "; ".join(dict.fromkeys(request.errors)) or "not confirmed in the venue's reply"
            actions += self._refuse(unconfirmed, detail)
        confirmed = len(request.acked)
        if confirmed:
            detail = (
                f"request {request.request_id} confirmed: {confirmed} of {len(request.subscriptions)} subscription(s)"
            )
            actions.insert(0, Record("subscribe", detail))
        return actions

    def _refuse(self, subscriptions: tuple[Subscription, ...], detail: str) -> list[Action]:
        """Drop refused subscriptions (never retried): events rows, then `Refused` for the connector."""
        refused = tuple(s for s in subscriptions if s in self.connection.subscriptions and s not in self.refused)
        if not refused:
            return []
        self.stats.refused += len(refused)
        for subscription in refused:
            self.refused[subscription] = detail
        self.acked.difference_update(refused)
        remaining = tuple(s for s in self.connection.subscriptions if s not in self.refused)
        self.connection = Connection(self.connection.url, remaining)
        error = SubscriptionError(f"{self.venue.name} refused {len(refused)} subscription(s): {detail}")
        if not remaining:
            self.failed = error
        actions: list[Action] = [
            Record("error", f"subscription refused ({s.table} {s.channel or ''}): {detail}"[:500], s.symbol)
            for s in refused
        ]
        actions.append(Refused(refused, error))
        return actions

    def _forget(self, request: _Request) -> None:
        for request_id in [k for k, v in self._pending.items() if v is request]:
            del self._pending[request_id]

    # -- the clock ------------------------------------------------------------------

    def poll(self, now_ns: int) -> list[Action]:
        """Time-driven actions: a client ping when idle, a reconnect when stale, unanswered requests."""
        if not self.is_open:
            return []
        rules, dog = self.rules, self._watchdog
        if dog.expired(now_ns):
            if self._stale_reported:
                return []
            self._stale_reported = True
            self.stats.stale += 1
            return [Reconnect(f"stale: no message for {dog.silent_ns(now_ns) / _NS:.1f} s", graceful=False)]
        actions: list[Action] = []
        if rules.ping is not None and not self._ping_outstanding and dog.silent_ns(now_ns) >= rules.idle_s * _NS:
            self._ping_outstanding = True
            self.stats.pings_sent += 1
            actions.append(Send(rules.ping))
        if self._retry:
            actions += self._retries(now_ns)
        timeout_ns = int(self.ack_timeout_s * _NS)
        for request in {id(r): r for r in self._pending.values()}.values():
            if request.confirmed:
                if now_ns - request.sent_ns >= timeout_ns:
                    self._forget(request)  # late duplicate acks no longer matter
            elif request.errors and now_ns - request.sent_ns >= timeout_ns:
                actions += self._settle(request)  # a venue error and no more replies: refuse what is unconfirmed
            elif not request.reported and now_ns - request.sent_ns >= timeout_ns:
                request.reported = True
                self.stats.unanswered += 1
                actions.append(
                    Record(
                        "error",
                        f"no reply to request {request.request_id} ({request.op}) within {self.ack_timeout_s:g} s",
                    )
                )
        return actions

    def next_deadline_ns(self) -> int | None:
        """The monotonic time at which `poll` may next have something to do (None: closed)."""
        if not self.is_open:
            return None
        # once reported stale, the watchdog has nothing more to say (the link is being replaced)
        deadline = _FAR if self._stale_reported else self._watchdog.deadline_ns()
        if self.rules.ping is not None and not self._ping_outstanding:
            deadline = min(deadline, self._watchdog.last_ns + int(self.rules.idle_s * _NS))
        timeout_ns = int(self.ack_timeout_s * _NS)
        for request in self._pending.values():
            if not request.confirmed and (not request.reported or request.errors):
                deadline = min(deadline, request.sent_ns + timeout_ns)
        if self._retry and self.paused is None:
            deadline = min(deadline, *self._retry.values())
        return deadline

    def _retries(self, now_ns: int) -> list[Action]:
        """Ask again for the subscriptions whose retry is due, when the budget (and the venue) allow."""
        if self.paused is not None:
            return []
        due = tuple(s for s, at in self._retry.items() if at <= now_ns)
        due = tuple(s for s in due if s in self.connection.subscriptions and s not in self.acked)
        if not due:
            for s in [s for s, at in self._retry.items() if at <= now_ns]:
                del self._retry[s]
            return []
        wait = self._budget_wait(now_ns, len(self.venue.request_groups(due)), reserve=0)
        if wait:
            for subscription in due:
                self._retry[subscription] = now_ns + wait
            return []
        for subscription in due:
            del self._retry[subscription]
        self.stats.retries += 1
        return self._requests("subscribe", due, now_ns, self.venue.subscribe_messages)

    def _budget_wait(self, now_ns: int, requests: int, reserve: int) -> int:
        """ns until `requests` fit the budget while leaving `reserve` of it (0: now)."""
        budget = self.budget
        if budget is None:
            return 0
        cost = min(budget.limit, requests + min(reserve, budget.limit - requests))
        return budget.wait_ns(now_ns, cost)

    # -- runtime changes ------------------------------------------------------------

    def subscribe(self, subscriptions: Sequence[Subscription], now_ns: int) -> list[Action]:
        """Add subscriptions: frames now if open, and they are part of every later open.

        Raises:
            ConfigError: the subscriptions would not fit this one connection (URL route, stream cap).
        """
        new = tuple(dict.fromkeys(s for s in subscriptions if s not in self.connection.subscriptions))
        if not new:
            return []
        for subscription in new:
            self.refused.pop(subscription, None)
        self._replan((*self.connection.subscriptions, *new))
        if not self.is_open:
            return []
        return self._requests("subscribe", new, now_ns, self.venue.subscribe_messages)

    def unsubscribe(self, subscriptions: Sequence[Subscription], now_ns: int) -> list[Action]:
        """Remove subscriptions: frames now if open; later opens leave them out."""
        gone = tuple(s for s in self.connection.subscriptions if s in set(subscriptions))
        if not gone:
            return []
        remaining = tuple(s for s in self.connection.subscriptions if s not in set(gone))
        if remaining:
            self._replan(remaining)
        else:
            self.connection = Connection(self.connection.url, ())
        if not self.is_open:
            return []
        return self._requests("unsubscribe", gone, now_ns, self.venue.unsubscribe_messages)

    def resubscribe(self, symbol: str, now_ns: int) -> list[Action]:
        """Unsubscribe and subscribe `symbol`'s book again: the venue then sends a fresh snapshot."""
        books = tuple(s for s in self.connection.subscriptions if s.symbol == symbol and s.table == "l2")
        if not books or not self.is_open:
            return []
        if self.paused is not None:
            return [Wait(symbol, int(PAUSED_RETRY_S * _NS), f"venue paused: {self.paused}")]
        wait = self._budget_wait(now_ns, 2 * len(self.venue.request_groups(books)), RESERVE)
        if wait:
            self.stats.budget_waits += 1
            budget = self.budget
            assert budget is not None
            spent = f"{budget.used(now_ns)} of {budget.limit} requests per {budget.window_ns / _NS:g} s used"
            return [Wait(symbol, wait, f"request budget spent ({spent}, {RESERVE} kept in reserve)")]
        actions: list[Action] = [Record("resync", "resubscribe", symbol)]
        actions += self._requests("unsubscribe", books, now_ns, self.venue.unsubscribe_messages)
        actions += self._requests("subscribe", books, now_ns, self.venue.subscribe_messages)
        return actions

    def _replan(self, subscriptions: tuple[Subscription, ...]) -> None:
        """Re-plan the URL (it carries the streams on some venues) for a new subscription set."""
        planned = self.venue.connections(subscriptions)
        if len(planned) != 1:
            raise ConfigError(
                f"{self.venue.name}: {len(subscriptions)} subscriptions need {len(planned)} connections; "
                "subscribe the extra ones on another connection"
            )
        self.connection = Connection(planned[0].url, subscriptions)

    # -- requests -------------------------------------------------------------------

    def _requests(
        self,
        op: str,
        subscriptions: tuple[Subscription, ...],
        now_ns: int,
        make: Callable[[tuple[Subscription, ...], int], list[bytes]],
    ) -> list[Action]:
        """One request per `Venue.request_groups` group, each with its own id (answered and refused alone)."""
        actions: list[Action] = []
        for group in self.venue.request_groups(subscriptions):
            actions += self._request(op, group, now_ns, functools.partial(_frames, make, group))
        return actions

    def _request(
        self, op: str, subscriptions: tuple[Subscription, ...], now_ns: int, make: Callable[[int], list[bytes]]
    ) -> list[Action]:
        request_id = self._next_id
        frames = make(request_id)
        if not frames:
            return []
        if self.budget is not None and op in _BUDGETED:
            # charged even when over (the venue's 60014 is then retried)
            self.budget.reserve(now_ns, min(len(frames), self.budget.limit))
        self._next_id += len(frames)
        self.stats.requests += 1
        expected = self.venue.replies_expected(subscriptions) if subscriptions else 1
        request = _Request(request_id, op, subscriptions, now_ns, expected=expected)
        for offset in range(len(frames)):
            self._pending[request_id + offset] = request
        return [Send(frame, op) for frame in frames]


def _frames(
    make: Callable[[tuple[Subscription, ...], int], list[bytes]], group: tuple[Subscription, ...], request_id: int
) -> list[bytes]:
    return make(group, request_id)


def _some(frame: bytes | None) -> list[bytes]:
    return [] if frame is None else [frame]


def _as_id(request_id: object) -> int:
    """A reply's id as our int (venues echo ids as ints or digit strings); -1 when it is none of ours."""
    if type(request_id) is int:
        return request_id
    if type(request_id) is str and request_id.isascii() and request_id.isdigit():
        return int(request_id)
    return -1
