"""The room calibration routes (docs/calibration.md, docs/api.md).

``POST /api/calibration`` starts one (``{"stream": ..., "source": ...}``, both
optional: the stream with the most connected rooms among those broadcaster
can write, and a browser's recording); it runs in a task the app owns.
Progress goes to the live-updates socket as ``{"type": "calibration",
"calibration": {...}}`` (the body of ``GET /api/calibration``).  A browser that records sends its
samples with ``POST /api/calibration/recording?rate=N`` (raw S16LE mono)
once the state is ``waiting``.  ``POST /api/calibration/apply`` and
``/undo`` set and restore the rooms' latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

from ..calibration import (
    Calibration,
    LocalRecording,
    Recording,
    SignalOut,
    SinkWriter,
    State,
    UploadedRecording,
)
from ..errors import BroadcasterError, BusyError, NotFoundError
from ..service import MeteredDelivery, Service
from .api import SERVICE, get_str, json_body
from .auth import BadRequest
from .events import EventHub

_LOGGER = logging.getLogger(__name__)

CALIBRATION: web.AppKey[Calibration] = web.AppKey("calibration", Calibration)
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("calibration_tasks", set)

MAX_RECORDING = 16 * 1024 * 1024
"""Bytes of an uploaded recording: 87 s of 48 kHz 16-bit mono (a calibration takes ~4 s a room)."""
_SOURCE = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")

routes = web.RouteTableDef()


def setup(app: web.Application, service: Service, hub: EventHub) -> None:
    """Mount the routes and the calibration state on ``app``."""

    @contextlib.asynccontextmanager
    async def hold(stream: str) -> AsyncIterator[SignalOut | None]:
        feeding = [
            c for c in service.captures.values() if c.slot.stream == stream and c.state != "failed"
        ]
        meters = []
        native = ""
        for capture in feeding:
            meter = capture.runner.meter
            if isinstance(meter, MeteredDelivery):
                meters.append(meter)
            elif capture.runner.status.sink and capture.state not in ("stopped",):
                # PipeWire itself writes the pipe: play the signal into the capture sink.
                native = capture.runner.status.sink
        for meter in meters:
            meter.held = True
        try:
            if native:
                async with SinkWriter(native, env=service.env) as writer:
                    yield writer
            else:
                yield None
        finally:
            for meter in meters:
                meter.held = False

    calibration = Calibration(
        lambda: service.snap.control, on_change=lambda: hub.publish("calibration"), hold=hold
    )
    app[CALIBRATION] = calibration
    app[TASKS] = set()
    hub.extra["calibration"] = lambda: {"calibration": calibration.progress.to_json()}
    app.router.add_routes(routes)

    async def cancel_tasks(app: web.Application) -> None:
        tasks = app[TASKS]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.on_shutdown.append(cancel_tasks)


def _pick_stream(service: Service, wanted: str) -> tuple[str, str]:
    """(stream, fifo) to calibrate: ``wanted``, else the writable one most rooms play."""
    slots = {slot.stream: str(slot.fifo) for slot in service.slots()}
    if wanted:
        if wanted not in slots:
            raise NotFoundError(f"there is no pipe stream {wanted!r} on this machine to calibrate")
        return wanted, slots[wanted]
    if not slots:
        raise NotFoundError("snapserver has no pipe stream on this machine to play the signal into")
    rooms = service.snap.view().rooms
    counts = {s: sum(r.connected and r.stream_id == s for r in rooms) for s in slots}
    stream = max(slots, key=lambda s: counts[s])
    return stream, slots[stream]


@routes.get("/api/calibration")
async def get_calibration(request: web.Request) -> web.Response:
    return web.json_response(request.app[CALIBRATION].progress.to_json())


@routes.post("/api/calibration")
async def start_calibration(request: web.Request) -> web.Response:
    body = await json_body(request)
    service = request.app[SERVICE]
    calibration = request.app[CALIBRATION]
    if calibration.busy:
        raise BusyError("a calibration is already running")
    stream, fifo = _pick_stream(service, get_str(body, "stream", required=False))
    source = get_str(body, "source", required=False)
    recording: Recording
    if source:
        if not _SOURCE.match(source):
            raise BadRequest("source must be a PipeWire source name such as alsa_input.usb-...")
        recording = LocalRecording(source, env=service.env)
    else:
        recording = UploadedRecording()

    async def run() -> None:
        try:
            await calibration.run(stream, fifo, recording)
        except BroadcasterError as err:
            _LOGGER.warning("calibration failed: %s", err)
        except Exception:
            _LOGGER.exception("calibration failed")

    task = asyncio.create_task(run(), name="calibration")
    tasks = request.app[TASKS]
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    # The task has started once the state shows this run's id.
    await asyncio.sleep(0)
    return web.json_response(calibration.progress.to_json(), status=202)


@routes.post("/api/calibration/recording")
async def upload_recording(request: web.Request) -> web.Response:
    import numpy as np

    calibration = request.app[CALIBRATION]
    recording = calibration.recording
    if not isinstance(recording, UploadedRecording) or not recording.waiting:
        raise BadRequest("no calibration is waiting for a browser's recording")
    if request.content_type != "application/octet-stream":
        raise BadRequest("send the recording as application/octet-stream (S16LE mono)")
    try:
        rate = int(request.query.get("rate", ""))
    except ValueError:
        raise BadRequest("rate must be the recording's sample rate, e.g. ?rate=48000") from None
    if not 8000 <= rate <= 192000:
        raise BadRequest("rate must be from 8000 to 192000")
    data = bytearray()
    while chunk := await request.content.read(65536):
        data += chunk
        if len(data) > MAX_RECORDING:
            raise BadRequest(f"the recording is larger than {MAX_RECORDING} bytes")
    samples = np.frombuffer(bytes(data[: len(data) // 2 * 2]), dtype="<i2")
    _LOGGER.info(
        "calibration recording: %.1f s at %d Hz, %s gaps (%s ms) filled by the browser (%s clock)",
        samples.size / rate,
        rate,
        request.query.get("gaps", "?"),
        request.query.get("gap_ms", "?"),
        request.query.get("clock", "?"),
    )
    recording.deliver(samples.astype(np.float64) / 32768, rate)
    return web.json_response({"received": int(samples.size), "rate": rate}, status=202)


@routes.post("/api/calibration/apply")
async def apply_calibration(request: web.Request) -> web.Response:
    calibration = request.app[CALIBRATION]
    if calibration.progress.state not in (State.DONE, State.APPLIED):
        raise BadRequest("there is no finished calibration to apply")
    if not calibration.progress.proposed:
        raise BadRequest("no room was heard: there is nothing to apply")
    latencies = await calibration.apply()
    return web.json_response({"latency": latencies, **calibration.progress.to_json()})


@routes.post("/api/calibration/undo")
async def undo_calibration(request: web.Request) -> web.Response:
    calibration = request.app[CALIBRATION]
    if calibration.progress.state != State.APPLIED:
        raise BadRequest("nothing to undo: the last calibration was not applied")
    latencies = await calibration.undo()
    return web.json_response({"latency": latencies, **calibration.progress.to_json()})
