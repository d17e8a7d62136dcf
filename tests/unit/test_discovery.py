"""Merging mDNS records of both snapserver generations into servers."""

from __future__ import annotations

from broadcaster.discovery import SERVICE_TYPES, merge


def test_types_of_both_generations_are_browsed() -> None:
    assert {"_snapcast-jsonrpc._tcp.local.", "_snapcast-ctrl._tcp.local."} <= set(SERVICE_TYPES)
    assert "_snapcast-http._tcp.local." in SERVICE_TYPES


def test_records_of_one_server_merge() -> None:
    servers = merge(
        [
            ("_snapcast._tcp.local.", "Snapcast", "a.local.", ["10.0.0.2"], 1704),
            ("_snapcast-jsonrpc._tcp.local.", "Snapcast", "a.local.", ["10.0.0.2"], 1705),
            ("_snapcast-http._tcp.local.", "Snapcast", "a.local.", ["10.0.0.2"], 1780),
            ("_snapcast-ctrl._tcp.local.", "Snapcast", "b.local.", ["10.0.0.3"], 2705),
            ("_snapcast-https._tcp.local.", "Snapcast", "b.local.", ["10.0.0.3"], 2788),
            ("_other._tcp.local.", "x", "c.local.", ["10.0.0.4"], 1),
        ]
    )
    assert [(s.host, s.control_port, s.stream_port, s.http_port) for s in servers] == [
        ("a.local.", 1705, 1704, 1780),
        ("b.local.", 2705, 0, 0),
    ]
    assert servers[0].control_address == "10.0.0.2:1705"


def test_stream_only_server_gets_the_default_control_port() -> None:
    (server,) = merge([("_snapcast._tcp.local.", "S", "h.local.", ["fe80::1"], 4000)])
    assert server.control_port == 4001
    assert server.control_address == "[fe80::1]:4001"


def test_a_sighting_is_of_the_server_a_connection_reaches() -> None:
    (stream_only,) = merge([("_snapcast._tcp.local.", "Snapcast", "a.local.", ["10.0.0.2"], 1704)])
    assert stream_only.is_at("10.0.0.2", 1705)  # control = stream + 1
    assert stream_only.is_at(
        "127.0.0.1", 1705
    )  # this machine's server, announced with its LAN address
    assert stream_only.is_at("house.local", 1705)  # a name: the port decides
    assert stream_only.is_at("[::1]", 1705)
    assert not stream_only.is_at("10.0.0.3", 1705)  # another machine
    assert not stream_only.is_at("10.0.0.2", 1704)  # another port
