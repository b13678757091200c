"""``exchangeInfo`` bodies for Binance spot and USD-M, in the venues' own field order.

Filters follow the real lists: ``PRICE_FILTER`` first, then ``LOT_SIZE``, then the rest.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .generate import Instrument, fixed

if TYPE_CHECKING:
    from .binance import BinanceSpot


def exchange_info(venue: BinanceSpot) -> dict[str, Any]:
    """The exchangeInfo answer listing every simulated symbol."""
    now = int(time.time() * 1000)
    if venue.futures:
        return {
            "timezone": "UTC",
            "serverTime": now,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                _limit("REQUEST_WEIGHT", "MINUTE", 1, 2400),
                _limit("ORDERS", "MINUTE", 1, 1200),
                _limit("ORDERS", "SECOND", 10, 300),
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [_futures_symbol(i) for i in venue.instruments],
        }
    return {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": [
            _limit("REQUEST_WEIGHT", "MINUTE", 1, 6000),
            _limit("ORDERS", "SECOND", 10, 100),
            _limit("ORDERS", "DAY", 1, 200000),
            _limit("RAW_REQUESTS", "MINUTE", 5, 61000),
        ],
        "exchangeFilters": [],
        "symbols": [_spot_symbol(i) for i in venue.instruments],
    }


def _limit(kind: str, interval: str, num: int, limit: int) -> dict[str, Any]:
    return {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}


def _spot_symbol(i: Instrument) -> dict[str, Any]:
    tick = fixed(1, i.tick_scale, 8)
    step = fixed(1, i.lot_scale, 8)
    return {
        "symbol": i.symbol,
        "status": "TRADING",
        "baseAsset": i.base,
        "baseAssetPrecision": 8,
        "quoteAsset": i.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _futures_symbol(i: Instrument) -> dict[str, Any]:
    tick = fixed(1, i.tick_scale, i.tick_scale)
    step = fixed(1, i.lot_scale, i.lot_scale)
    return {
        "symbol": i.symbol,
        "pair": i.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": i.base,
        "quoteAsset": i.quote,
        "marginAsset": i.quote,
        "pricePrecision": i.tick_scale,
        "quantityPrecision": i.lot_scale,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {"minPrice": tick, "maxPrice": "1000000", "filterType": "PRICE_FILTER", "tickSize": tick},
            {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": "1000", "minQty": step},
            {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": "120", "minQty": step},
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {"notional": "5", "filterType": "MIN_NOTIONAL"},
            {
                "multiplierDown": "0.9500",
                "multiplierUp": "1.0500",
                "multiplierDecimal": "4",
                "filterType": "PERCENT_PRICE",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }
