"""``GET /metrics``: the service's counters in Prometheus text format (0.0.4).

Per capture (label ``capture``, ``app``, ``stream``): frames captured, chunks
delivered / dropped / discarded, pipe reconnects, pw-record restarts,
underruns (seconds in which the app played but no audio reached snapserver),
the signal level, and the configured latency budget (capture node latency and
delivery buffer).  Per room (label ``room``): volume, mute, connection and
snapserver's client latency.  Plus whether the control connection is up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..audio import AudioFormat
from ..service import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


HELP: dict[str, str] = {
    "broadcaster_up": "1 while the control connection to snapserver is up.",
    "broadcaster_captures": "Captures the service runs.",
    "broadcaster_capture_playing": "1 while the captured app plays.",
    "broadcaster_frames_captured_total": "Audio frames read from PipeWire.",
    "broadcaster_chunks_delivered_total": "Chunks (captured blocks) written to snapserver.",
    "broadcaster_chunks_dropped_total": (
        "Chunks dropped because snapserver did not read fast enough."
    ),
    "broadcaster_chunks_discarded_total": "Chunks discarded while no snapserver pipe was open.",
    "broadcaster_pipe_reconnects_total": "Times the pipe was (re)opened.",
    "broadcaster_capture_restarts_total": "Times pw-record was restarted.",
    "broadcaster_underruns_total": (
        "Seconds in which the app played but no audio reached snapserver."
    ),
    "broadcaster_level_dbfs": "RMS level of the last second of audio.",
    "broadcaster_capture_latency_seconds": "Configured PipeWire node latency of the capture.",
    "broadcaster_delivery_buffer_seconds": "Most audio held between capture and snapserver.",
    "broadcaster_room_volume_percent": "A room's volume.",
    "broadcaster_room_muted": "1 if the room is muted.",
    "broadcaster_room_connected": "1 if the room's snapclient is connected.",
    "broadcaster_room_latency_seconds": "A room's latency setting.",
    "broadcaster_snapserver_restarts_total": "Managed snapserver restarts.",
}
"""Every metric family's name and help text, in the order they are written."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Family:
    """One metric's samples.  Its kind follows from its name, as Prometheus
    names them: one ending in ``_total`` is a counter, any other a gauge."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.kind = "counter" if name.endswith("_total") else "gauge"
        self.help = help_text
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, labels: dict[str, str], value: float) -> None:
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            yield f"{self.name}{_labels(labels)} {_number(value)}"


def render(service: Service) -> str:
    """All metrics of ``service`` as Prometheus exposition text."""
    cfg = service.config
    families = {name: _Family(name, text) for name, text in HELP.items()}

    def put(name: str, labels: dict[str, str], value: float) -> None:
        families[name].add(labels, value)

    put("broadcaster_up", {}, 1 if service.snap.connected else 0)
    put("broadcaster_captures", {}, len(service.captures))
    if service.managed is not None:
        put("broadcaster_snapserver_restarts_total", {}, service.managed.restarts)
    frame_bytes = AudioFormat.parse(cfg.capture.format).bytes_per_frame
    for capture in service.captures.values():
        labels = {
            "capture": capture.id,
            "app": capture.target.name or f"pid {capture.target.pid}",
            "stream": capture.slot.stream,
        }
        status = capture.runner.status
        put("broadcaster_capture_playing", labels, 1 if capture.state == "playing" else 0)
        put(
            "broadcaster_frames_captured_total",
            labels,
            status.capture.bytes_captured // max(1, frame_bytes),
        )
        put("broadcaster_chunks_delivered_total", labels, status.delivery.chunks_written)
        put("broadcaster_chunks_dropped_total", labels, status.delivery.chunks_dropped)
        put("broadcaster_chunks_discarded_total", labels, status.delivery.chunks_discarded)
        put("broadcaster_pipe_reconnects_total", labels, status.delivery.reconnects)
        put("broadcaster_capture_restarts_total", labels, status.capture.restarts)
        put("broadcaster_underruns_total", labels, capture.underruns)
        put("broadcaster_level_dbfs", labels, capture.level.rms_db)
        put("broadcaster_capture_latency_seconds", labels, cfg.capture.latency_ms / 1000)
        put("broadcaster_delivery_buffer_seconds", labels, cfg.delivery.buffer_ms / 1000)
    for room in service.snap.view().rooms:
        labels = {"room": room.id, "name": room.name}
        put("broadcaster_room_volume_percent", labels, room.volume)
        put("broadcaster_room_muted", labels, 1 if room.muted else 0)
        put("broadcaster_room_connected", labels, 1 if room.connected else 0)
        put("broadcaster_room_latency_seconds", labels, room.latency / 1000)
    lines: list[str] = []
    for family in families.values():
        if family.samples:
            lines.extend(family.lines())
    return "\n".join(lines) + "\n"
