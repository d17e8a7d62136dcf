"""Property tests: parsers and config loading fail only with our own clear errors."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster import config
from broadcaster.audio import AudioFormat, Converter
from broadcaster.errors import AudioFormatError, ConfigError, PipeWireError
from broadcaster.pipewire import merge_dump, parse_dump

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

keys = st.sampled_from(
    ["id", "type", "info", "props", "metadata", "media.class", "node.name", "client.id",
     "object.serial", "output-node-id", "input-node-id", "subject", "key", "value"]
)  # fmt: skip
pw_objects = st.recursive(
    st.none() | st.integers(-5, 200) | st.text(max_size=12) | st.sampled_from(
        ["PipeWire:Interface:Node", "PipeWire:Interface:Client", "PipeWire:Interface:Link",
         "PipeWire:Interface:Metadata", "Stream/Output/Audio", "Audio/Sink", "default",
         "target.object", "target.node", "default.audio.sink"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(pw_objects, max_size=6))
def test_graph_parsing_survives_any_pw_dump_shape(objects: list[object]) -> None:
    text = json.dumps(objects)
    try:
        parsed = merge_dump(text)
    except PipeWireError:
        return
    graph = parse_dump(parsed)
    for stream in graph.streams:
        graph.sinks_of(stream)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_pw_dump_garbage_is_a_pipewire_error(text: str) -> None:
    with contextlib.suppress(PipeWireError):
        merge_dump(text)


toml_scalars = st.one_of(
    st.integers(-(2**31), 2**31).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(alphabet=string.printable, max_size=20).map(json.dumps),
)
section_keys = {
    "": ["server", "timeout", "bogus"],
    "capture": ["sink", "format", "restore", "latency_ms", "idle_stop"],
    "delivery": ["pipe", "tcp", "stream", "buffer_ms"],
    "snapserver": ["mode", "bind", "stream_port", "control_port", "codec", "stream_name"],
}


@st.composite
def config_files(draw: st.DrawFn) -> str:
    lines = []
    for section, names in section_keys.items():
        if section:
            lines.append(f"[{section}]")
        for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=3)):
            lines.append(f"{name} = {draw(toml_scalars)}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(config_files())
def test_any_config_file_loads_or_fails_with_one_config_error(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            loaded = config.load(path, env={})
        except ConfigError as err:
            message = str(err).strip()
        else:
            loaded.validate()
            return
    assert message
    assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_audio_format_parsing_never_crashes(text: str) -> None:
    try:
        fmt = AudioFormat.parse(text)
    except AudioFormatError:
        return
    assert fmt.bytes_per_frame > 0


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([8000, 22050, 44100, 48000, 96000]),
    channels=st.integers(1, 8),
    sample=st.sampled_from(["s16", "s32", "f32"]),
    cuts=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
)
def test_converter_output_is_whole_frames_whatever_the_input_splits(
    rate: int, channels: int, sample: str, cuts: list[int]
) -> None:
    fmt = AudioFormat(rate, channels, sample)  # type: ignore[arg-type]
    conv = Converter(fmt)
    data = np.random.default_rng(1).integers(0, 255, sum(cuts), dtype=np.uint8).tobytes()
    if sample == "f32":  # random bytes could be NaN/inf floats: use real samples
        frames = len(data) // fmt.bytes_per_frame
        data = np.zeros(frames * channels, dtype="<f4").tobytes() + data[: len(data) % 8]
    out: list[bytes] = []
    pos = 0
    for cut in cuts:
        out.append(conv.push(data[pos : pos + cut]))
        pos += cut
    out.append(conv.flush())
    assert all(len(part) % 4 == 0 for part in out)  # s16 stereo frames, never split
