"""``broadcaster calibrate``: measure every room's delay, through the running service.

With ``--source`` the service records that PipeWire source on its own machine
(a USB microphone; ``SINK.monitor`` for what a sink plays); without it, the
command waits for the next calibration a browser runs ("Calibrate rooms" on
the page) and prints its results.  ``--apply`` then sets the latencies,
``--undo`` restores those from before the last Apply.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import CalibrationError, ControlConnectionError, ControlTimeoutError

_DONE = ("done", "applied", "failed")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "calibrate",
        help="measure each room's delay with a microphone and even them out",
        description="Play a short chirp in one room at a time (the others silenced for that "
        "moment), record it, and print each room's delay after the earliest. Needs "
        "`broadcaster serve` running. Without --source, tap 'Calibrate rooms' on the page "
        "(the phone listens) and this prints the result.",
    )
    parser.add_argument(
        "--source",
        metavar="NAME",
        help="record this PipeWire source on the service's machine (SINK.monitor: a sink)",
    )
    parser.add_argument("--stream", help="calibrate the rooms of this stream")
    parser.add_argument("--apply", action="store_true", help="set the measured latencies")
    parser.add_argument(
        "--undo", action="store_true", help="restore the latencies from before the last apply"
    )
    parser.add_argument("--url", help="the service (default http://127.0.0.1:WEB_PORT)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_calibrate)


class _Api:
    def __init__(self, session: Any, url: str, token: str) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import asyncio

        import aiohttp

        try:
            async with asyncio.timeout(15):
                async with self._session.request(
                    method, self._url + path, json=body, headers=self._headers
                ) as reply:
                    data = await reply.json(content_type=None)
        except TimeoutError:
            raise ControlTimeoutError(f"broadcaster at {self._url} did not answer") from None
        except (aiohttp.ClientError, OSError) as err:
            raise ControlConnectionError(
                f"cannot reach broadcaster at {self._url} ({err}); is `broadcaster serve` running?"
            ) from None
        except ValueError:
            raise CalibrationError(f"broadcaster at {self._url} sent no JSON for {path}") from None
        if reply.status >= 400:
            message = data.get("error") if isinstance(data, dict) else data
            raise CalibrationError(f"{message}")
        return data


async def _calibrate(args: argparse.Namespace) -> int:
    import aiohttp

    from ..config import load

    config = load(args.config)
    url = args.url or f"http://127.0.0.1:{config.web.port}"
    async with aiohttp.ClientSession() as session:
        api = _Api(session, url, config.web.token)
        if args.undo:
            result = await api.call("POST", "/api/calibration/undo", {})
            _print_latencies(result["latency"], args.json, "restored")
            return 0
        before = await api.call("GET", "/api/calibration")
        if args.source:
            body = {"source": args.source, **({"stream": args.stream} if args.stream else {})}
            for attempt in range(1, ATTEMPTS + 1):
                started = await api.call("POST", "/api/calibration", body)
                progress = await _wait(api, int(started["id"]), args.timeout)
                if attempt == ATTEMPTS or not measure_again(progress):
                    break
                print(
                    "a room moved while it was measured, or the first was not heard: "
                    "measuring again",
                    file=sys.stderr,
                    flush=True,
                )
        else:
            print(
                "waiting for a calibration: open the page and tap 'Calibrate rooms'",
                file=sys.stderr,
                flush=True,
            )
            progress = await _wait(api, int(before["id"]) + 1, args.timeout)
        if progress["state"] == "failed":
            raise CalibrationError(progress["error"] or "calibration failed")
        if args.apply:
            if not progress["latency_proposed"]:
                raise CalibrationError("no room was heard: nothing to apply")
            progress = await api.call("POST", "/api/calibration/apply", {})
        _print_result(progress, args.json)
        measured = [r for r in progress["results"] if r["delay_ms"] is not None]
        return 0 if measured else 1


ATTEMPTS = 3
"""Runs at most with ``--source`` while :func:`measure_again` says so (as the page does)."""


def measure_again(progress: dict[str, Any]) -> bool:
    """Whether a finished calibration is worth running again: a heard room's timing
    moved while it was measured (a snapclient resync under load), or the reference
    (the first room: unmuted and loudest) was not heard while another room was
    (seen under load: its turn, the first, lost).  A room not heard is no reason."""
    if progress["state"] != "done" or not progress["results"]:
        return False
    results = progress["results"]
    if any(r["heard"] and r["delay_ms"] is None for r in results):
        return True
    return not results[0]["heard"] and any(r["heard"] for r in results[1:])


async def _wait(api: _Api, wanted: int, timeout: float) -> dict[str, Any]:
    import asyncio

    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        progress: dict[str, Any] = await api.call("GET", "/api/calibration")
        if int(progress["id"]) >= wanted:
            if progress["state"] in _DONE:
                return progress
            if progress["room"] and progress["room"] != shown:
                shown = progress["room"]
                print(
                    f"playing in {shown} ({progress['index']}/{progress['rooms']})",
                    file=sys.stderr,
                    flush=True,
                )
        if time.monotonic() > deadline:
            raise CalibrationError(f"no calibration finished within {timeout:g} s")
        await asyncio.sleep(0.25)


def _print_result(progress: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(progress, indent=2))
        return
    before = progress["latency_before"]
    proposed = progress["latency_proposed"]
    print(f"{'room':<24} {'delay':>9} {'±':>6} {'confidence':>10}  latency")
    for room in progress["results"]:
        rid = room["room_id"]
        if room["delay_ms"] is None:
            print(f"{room['name']:<24} {room['note'] or 'not heard'}")
            continue
        change = f"{before.get(rid, 0)} -> {proposed[rid]} ms" if rid in proposed else ""
        print(
            f"{room['name']:<24} {room['delay_ms']:>6.1f} ms {room['spread_ms']:>4.1f} "
            f"{room['confidence']:>10.0%}  {change}"
        )
    if progress["state"] == "applied":
        print("applied (broadcaster calibrate --undo restores the old latencies)")


def _print_latencies(latencies: dict[str, int], as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(latencies))
        return
    for room, latency in latencies.items():
        print(f"{room}: latency {latency} ms {what}")
