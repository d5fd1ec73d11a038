"""A FastAPI shop whose orders leave an audit trail.

Run it (from bindings/python, after ``pip install . fastapi uvicorn``)::

    FASTEN_SERVICE_ID=shop FASTEN_NODE_ID=node-1 \
    FASTEN_AUDIT_DSN=sqlite:///shop.db FASTEN_SYS_DSN=sqlite:///shop.db FASTEN_API_DSN=sqlite:///shop.db \
    FASTEN_CODES=examples/codes/shop.codes.yaml FASTEN_READER_TOKENS=dev-token-0123456789 \
    uvicorn --app-dir examples fastapi_app:app --port 8000
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict

from fastapi import FastAPI, Request

import fasten
import fasten.log
import fasten.reader
import fasten.shim.http
import shop_codes  # fasten gen --lang python --out examples/shop_codes.py examples/codes/shop.codes.yaml


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Reads FASTEN_*, loads the codes of FASTEN_CODES, and fails at boot if they
    # differ from the generated ones.
    fasten.init(expect_codes=shop_codes.EXPECT_CODES)
    yield
    fasten.shutdown()


app = FastAPI(lifespan=lifespan)
app.add_middleware(fasten.shim.http.APILogger)
app.add_middleware(fasten.shim.http.RequestIDMiddleware)  # outermost
app.mount("/api/v1/logs", fasten.reader.router())  # bearer tokens from FASTEN_READER_TOKENS


@app.post("/orders/{order_id}")
async def place_order(order_id: str, request: Request) -> Dict[str, str]:
    fasten.set_actor("u-42", "user")
    fasten.set_target(order_id)
    fasten.log.info("placing order", order_id=order_id)
    event_id = shop_codes.emit(shop_codes.ORDER_PLACED, target=order_id, detail={"total_cents": 1250, "card": "4111 1111 1111 1111"})
    return {"order": order_id, "event": event_id, "request_id": fasten.current_request_id() or ""}
