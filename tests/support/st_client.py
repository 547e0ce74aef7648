"""A protocol-level Streamlit session: the browser's websocket messages without the browser.

Load tests use it to open many sessions at once on one 2-core machine without twenty Chromium
tabs competing with the server for the CPU; what it measures is the server's time to run a page
for a new session, from the rerun request to the script's finish.

:func:`open_page` runs a page once in a new session. :class:`Session` keeps a session open the
way a browser tab does: full runs of a page, and the re-runs of the page's fragments that asked
to run every few seconds (``st.fragment(run_every=...)``), which a browser sends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
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


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/_stcore/stream"


class Session:
    """One open session (a browser tab): full runs and fragment re-runs, one at a time.

    ``fragments`` maps each fragment that asked to re-run by itself to its interval in seconds,
    as the browser keeps them: a full run starts the set afresh, a fragment run may add to it,
    and the server's ``stop_auto_rerun`` removes from it.
    """

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.fragments: dict[str, float] = {}
        self.page_hash = ""  # the page the session is on (its script hash)
        self.query = ""  # the URL's query as the page last set it

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, base_url: str) -> AsyncIterator[Session]:
        async with websockets.connect(
            ws_url(base_url), max_size=None, subprotocols=["streamlit"]
        ) as ws:
            yield cls(ws)

    async def run(
        self, page: str, query: str = "", timeout: float = 180, started: float | None = None
    ) -> PageRun:
        """Run ``page`` (its url_path; "" for the default) with ``query`` as the URL's query;
        timed from ``started`` (a ``time.monotonic()``; default: now)."""
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        self.query = query
        return await self._send(msg, time.monotonic() if started is None else started, timeout)

    async def refresh(self, fragment_id: str, timeout: float = 180) -> PageRun:
        """Re-run one fragment as the browser does when its interval has passed."""
        msg = BackMsg()
        msg.rerun_script.query_string = self.query
        msg.rerun_script.page_script_hash = self.page_hash
        msg.rerun_script.fragment_id = fragment_id
        msg.rerun_script.is_auto_rerun = True
        return await self._send(msg, time.monotonic(), timeout)

    async def _send(self, msg: BackMsg, started: float, timeout: float) -> PageRun:
        await self.ws.send(msg.SerializeToString())
        return await self._read_run(started, timeout, full=not msg.rerun_script.fragment_id)

    async def _read_run(self, started: float, timeout: float, *, full: bool) -> PageRun:
        run = PageRun(0.0, 0, 0)
        if full:
            self.fragments = {}
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
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
            elif kind == "navigation":
                self.page_hash = fm.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query = fm.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.fragments[fm.auto_rerun.fragment_id] = fm.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fid in fm.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(fid, None)
            elif kind == "script_finished" and fm.script_finished != FINISHED_EARLY_FOR_RERUN:
                run.seconds = time.monotonic() - started
                return run


async def open_page(base_url: str, page: str, query: str = "", timeout: float = 180) -> PageRun:
    """Open ``page`` (its url_path; "" for the default) as a new session and run it once."""
    started = time.monotonic()  # the connection is part of a new visitor's wait
    async with Session.connect(base_url) as session:
        return await session.run(page, query, timeout, started=started)
