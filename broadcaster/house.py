"""Operations on rooms and groups that take more than one request.

Each takes the connection (:class:`~broadcaster.control.SnapControl`) and the
state it acts on (:mod:`broadcaster.rooms` values), so callers that already
hold a fresh status (the CLI, the service's live view) read it only once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ControlError
from .rooms import Group, Room, ServerStatus, scale_group_volume

if TYPE_CHECKING:
    from .control import SnapControl


async def set_group_volume(snap: SnapControl, group: Group, percent: int) -> dict[str, int]:
    """Scale the group's rooms to ``percent`` like snapweb; returns the new volumes."""
    volumes = scale_group_volume(group.rooms, percent)
    by_id = {r.id: r for r in group.rooms}
    for room_id, volume in volumes.items():
        if by_id[room_id].volume != volume:
            await snap.set_room_volume(room_id, volume)
    return volumes


async def join(snap: SnapControl, rooms: list[Room], group: Group) -> None:
    """Move ``rooms`` into ``group`` (keeping its rooms)."""
    ids = [r.id for r in group.rooms]
    ids += [r.id for r in rooms if r.id not in ids]
    await snap.set_group_rooms(group.id, ids)


async def leave(snap: SnapControl, room: Room, status: ServerStatus) -> None:
    """Take ``room`` out of its group (snapserver gives it a group of its own)."""
    group = status.group_of(room)
    if len(group.rooms) <= 1:
        return
    await snap.set_group_rooms(group.id, [r.id for r in group.rooms if r.id != room.id])


async def party(snap: SnapControl, stream_id: str, status: ServerStatus) -> Group:
    """Every room into one group playing ``stream_id``; returns that group as it is now."""
    if not status.groups:
        raise ControlError("snapserver has no rooms to group")
    target = max(status.groups, key=lambda g: len(g.rooms))
    await snap.set_group_rooms(target.id, [r.id for r in status.rooms])
    await snap.set_group_stream(target.id, stream_id)
    return (await snap.status()).group(target.id)
