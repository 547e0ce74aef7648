"""A protocol-level Streamlit session: the browser's websocket messages without the browser.

Load tests use it to open many sessions at once on one 2-core machine without twenty Chromium
tabs competing with the server for the CPU; what it measures is the server's time to run a page
for a new session, from the rerun request to the script's finish.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED_EARLY_FOR_RERUN = 2


@dataclass
class PageRun:
    seconds: float
    bytes: int
    deltas: int
    problems: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


async def open_page(base_url: str, page: str, query: str = "", timeout: float = 180) -> PageRun:
    """Open ``page`` (its url_path; "" for the default) as a new session and run it once."""
    ws_url = base_url.replace("http://", "ws://") + "/_stcore/stream"
    started = time.monotonic()
    run = PageRun(0.0, 0, 0)
    async with websockets.connect(ws_url, max_size=None, subprotocols=["streamlit"]) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        await ws.send(msg.SerializeToString())
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout)
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            run.bytes += len(raw)
            kind = fm.WhichOneof("type")
            if kind == "delta":
                run.deltas += 1
                el = fm.delta.new_element
                which = el.WhichOneof("type")
                if which == "exception":
                    run.problems.append(f"exception: {el.exception.message}")
                elif which == "alert" and el.alert.format == el.alert.ERROR:
                    run.problems.append(f"error: {el.alert.body}")
                elif which == "markdown":
                    run.texts.append(el.markdown.body)
            elif kind == "page_not_found":
                run.problems.append("page not found")
            elif kind == "script_finished" and fm.script_finished != FINISHED_EARLY_FOR_RERUN:
                run.seconds = time.monotonic() - started
                return run
