"""Headless Chromium for tests, driven over the DevTools protocol.

:func:`chromium` starts ``chromium --headless=new`` with a private profile, a
free ``--remote-debugging-port`` and autoplay allowed (so a page may start an
AudioContext without a tap), waits until its first page target answers, and
yields a :class:`DevTools` client of that page.  On exit the browser is
stopped and reaped.  Real time: no ``--virtual-time-budget``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from .procs import Proc, await_until, free_port

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-features=MediaRouter",
    # Tests talk to loopback only: no name is ever looked up (a page linking
    # https://example.invalid/ fails at once instead of asking a DNS server).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def missing_tools() -> list[str]:
    return [] if shutil.which("chromium") else ["chromium"]


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.console: list[str] = []
        self.errors: list[str] = []
        """Console errors: failed loads (a 404), uncaught exceptions, console.error."""

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = next(self._ids)
        await self.ws.send_json({"id": request_id, "method": method, "params": params or {}})
        async with asyncio.timeout(30):
            while True:
                message = await self.ws.receive_json()
                if message.get("method") == "Runtime.consoleAPICalled":
                    args = message["params"].get("args", [])
                    self.console.append(
                        " ".join(str(a.get("value", a.get("description"))) for a in args)
                    )
                self._note_error(message)
                if message.get("id") == request_id:
                    if "error" in message:
                        raise AssertionError(f"{method}: {message['error']}")
                    return message.get("result", {})

    def _note_error(self, message: dict[str, Any]) -> None:
        params = message.get("params", {})
        if message.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        elif message.get("method") == "Runtime.exceptionThrown":
            self.errors.append(str(params["exceptionDetails"].get("exception", params)))
        elif message.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value")) for a in params.get("args", [])))

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str) -> None:
        """Wait until ``expression`` is true on the page (evaluated again and again)."""

        async def holds() -> bool:
            return bool(await self.evaluate(expression))

        await await_until(holds, timeout, what)

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", {"url": url})

    async def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    async def click_selector(self, selector: str) -> None:
        """A real mouse click (a user gesture) in the middle of an element,
        scrolled into view first (as a user would).

        The click must reach that element: one the page took away or moved
        between the press and the release (a re-render) fails here, saying
        what got the click, rather than as a change that never comes."""
        # Measured once the page has stopped moving it (three frames alike):
        # a page still filling in (a card above appearing) moves it otherwise.
        box = await self.evaluate(
            f"(async () => {{ const e = document.querySelector({selector!r});"
            " const frame = () => new Promise((ok) => requestAnimationFrame(ok));"
            " let last = '', same = 0;"
            " for (let i = 0; i < 120 && same < 3; i++) {"
            "   e.scrollIntoView({block: 'center', behavior: 'instant'});"
            "   await frame();"
            "   const now = JSON.stringify(e.getBoundingClientRect());"
            "   same = now === last ? same + 1 : 0; last = now; }"
            " window.__clickGot = '';"
            " document.addEventListener('click', (c) => {"
            "   window.__clickGot = c.target === e || e.contains(c.target) ? 'ok'"
            "     : (c.target.className || c.target.nodeName); },"
            "   {capture: true, once: true});"
            " const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2, !!e.disabled]; })()",
            await_promise=True,
        )
        await self.click(box[0], box[1])
        got = await self.evaluate("window.__clickGot")
        # A disabled control takes no click; None: the click took the page
        # elsewhere (a new document), as meant.
        assert box[2] or got in ("ok", None), f"a click on {selector} reached {got or 'nothing'}"

    async def phone(self, width: int = 360, height: int = 740, scale: float = 2) -> None:
        """Lay the page out as a phone's screen of ``width`` x ``height`` CSS pixels."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": True},
        )

    async def type_into(self, selector: str, text: str) -> None:
        """Replace an input's text as typing would, then leave it (a ``change`` event)."""
        await self.click_selector(selector)
        await self.evaluate(f"document.querySelector({selector!r}).select()")
        await self.call("Input.insertText", {"text": text})
        await self.evaluate(f"document.querySelector({selector!r}).blur()")

    async def screenshot(self, path: Path) -> bytes:
        result = await self.call("Page.captureScreenshot", {"format": "png"})
        png = base64.b64decode(result["data"])
        await asyncio.to_thread(path.write_bytes, png)
        return png


@contextlib.asynccontextmanager
async def chromium(
    base: Path,
    *,
    window: str = "412,860",
    env: dict[str, str] | None = None,
    flags: Sequence[str] = (),
) -> AsyncIterator[DevTools]:
    """A headless Chromium whose first page is driven by the yielded :class:`DevTools`.

    ``env`` (e.g. a private PipeWire session's) and extra ``flags`` go to the browser.
    """
    port = free_port()
    proc = Proc(
        [
            "chromium",
            *FLAGS,
            f"--window-size={window}",
            f"--user-data-dir={base / 'chromium-profile'}",
            f"--remote-debugging-port={port}",
            *flags,
            "about:blank",
        ],
        base / "chromium.log",
        env,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def page_target() -> str:
                if not proc.alive():
                    raise AssertionError(f"chromium exited:\n{proc.log_tail()}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as reply:
                        targets = await reply.json()
                except (aiohttp.ClientError, ValueError):
                    return ""
                urls = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
                return str(urls[0]) if urls else ""

            url = await await_until(page_target, 60, "chromium's DevTools endpoint")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                await tools.call("Runtime.enable")
                await tools.call("Log.enable")
                yield tools
    finally:
        await asyncio.to_thread(proc.stop)
