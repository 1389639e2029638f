"""An output buffer on disk: survives an agent restart, a kill -9 and (mostly) a power cut.

Layout and record format: :mod:`.segments`. How the work is split:

* **The poll path never touches the disk.** :meth:`DiskBuffer.add` appends the metric to an
  in-memory list of *pending* metrics (bounded by ``metric_buffer_limit``, drop-oldest, in case
  the disk stalls). Everything else runs on one thread of the buffer's own (one file operation
  at a time, in order), awaited by the output's flush loop, never by an input.
* **Written within a second.** Pending metrics are turned into line protocol on the event loop
  (the same work an output does before sending) and appended to the newest segment by the
  buffer's thread at least once a second, and as soon as 5,000 are waiting or the output is
  about to send. An output only ever sends what is already in a segment.
* **fsync policy.** The segment being written and the ack file are fsynced (``fdatasync``) at
  most once per ``flush_interval`` after a write, at each segment switch, and at a clean stop.
  So a kill -9 loses at most the last second of metrics (not yet written); a power cut at most
  the last flush interval (written, not yet synced). A batch the server took but whose ack was
  not yet written is sent again after a restart: at most the batches of one second (duplicates
  of the same points, which InfluxDB stores once).
* **Replay** reads records (a few MB at a time) oldest first and hands the output their stored
  bytes in batches of ``metric_batch_size`` (:class:`~webbo.agent.core.lines.LineBatch`).
* **Bounded by size.** Past ``buffer_max_bytes`` the oldest segment is deleted (segments are a
  sixteenth of the bound, at most 64 MB); what it held unsent is counted as dropped and
  reported (:mod:`.overflow`).
* **A corrupt tail** (power lost mid-write) is cut at the last good record when the buffer
  opens, logged, and everything before it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from webbo.agent.core.buffer import DropCallback
from webbo.agent.core.lines import Chunk, LineBatch
from webbo.agent.core.metric import Metric
from webbo.agent.core.segments import (
    FILE_HEADER,
    Segment,
    encode_lines,
    encode_record,
    read_ack,
    read_records,
    scan,
    segment_name,
    write_ack,
)

log = structlog.get_logger("webbo.agent")

__all__ = ["DiskBuffer", "DiskBufferError", "move_folder"]

T = TypeVar("T")

RECORD_METRICS = 2000
"""Most metrics in one record (a record is the unit of checksums and of reading)."""
WRITE_SOON = 5000
"""Pending metrics that make the buffer write at once rather than at the next second."""
WRITE_EVERY = 1.0
"""Seconds between two writes of what is pending (the kill -9 window)."""
READ_BYTES = 4 << 20
"""Bytes of records read from a segment at a time."""
MAX_SEGMENT = 64 << 20
MIN_SEGMENT = 64 << 10


class DiskBufferError(OSError):
    """The folder cannot be used (not writable, or another process holds it)."""


@dataclass
class Opened:
    """What :meth:`DiskBuffer._open` found."""

    metrics: int
    segments: int
    size: int
    oldest_ns: int
    cut: list[str]
    ack_lost: bool


class DiskBuffer:
    """An :class:`~webbo.agent.core.buffer.OutputBuffer` in a folder; see the module docstring.

    Sequence numbers of the disk start where the folder left off; ``read`` returns a batch's
    last sequence number and ``ack`` takes it, exactly like the memory ring.
    """

    kind = "disk"

    def __init__(self, directory: Path, max_bytes: int, *, limit: int,
                 flush_interval: float, label: str = "") -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.limit = limit
        self.flush_interval = float(flush_interval)
        self.log = log.bind(output=label, buffer_dir=str(self.directory))
        self.dropped = 0
        self.on_drop: DropCallback | None = None
        self._pending: deque[Metric] = deque()
        self._pending_since = 0.0
        # Thread-owned (the buffer's thread reads and writes these; the loop only reads ints).
        self._segments: deque[Segment] = deque()
        self._fd: int | None = None
        self._ack_fd: int | None = None
        self._lock_fd: int | None = None
        self._read_at: tuple[Path, int] | None = None
        self._written_ack = -1
        self._dirty_since: float | None = None
        self._synced_at = 0.0
        # Shared counters (plain ints: each has a single writer).
        self._next_seq = 0
        self._acked = -1
        self._floor = 0
        """Sequence numbers below this are gone from the disk (acknowledged or dropped)."""
        self._disk_metrics = 0
        """Unacknowledged metrics in the segments."""
        self._disk_bytes = 0
        self._loaded: deque[Chunk] = deque()
        """Records the thread has read for the loop (handed over even if the read that asked
        for them was cancelled, so the read position and the head never disagree)."""
        # Loop-owned.
        self._head: deque[Chunk] = deque()
        self._inflight: tuple[int, int] | None = None
        self._inflight_dropped = 0
        self._ack_queued = False
        self._task: asyncio.Task[None] | None = None
        self._soon: asyncio.Future[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._closed = False
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self.error = ""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webbo-buffer")
        self._opened: Future[Opened] = self._pool.submit(self._open)

    # -- the loop's side ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pending) + max(0, self._disk_metrics)

    @property
    def segment_bytes(self) -> int:
        return max(MIN_SEGMENT, min(MAX_SEGMENT, self.max_bytes // 16))

    def add(self, metric: Metric) -> None:
        pending = self._pending
        if not pending:
            self._pending_since = time.monotonic()
        pending.append(metric)
        if len(pending) > self.limit:
            pending.popleft()
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop(1, time.monotonic() - self._pending_since)
        elif len(pending) == WRITE_SOON and self._task is not None \
                and (self._soon is None or self._soon.done()):
            self._soon = asyncio.ensure_future(self._write_pending())

    def start(self) -> None:
        """Start the once-a-second writer (on the running loop)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._tick(), name=f"disk buffer {self.directory}")

    async def opened(self) -> Opened | None:
        """Wait for the folder to be opened; log what it held. None if it could not be."""
        try:
            return await asyncio.wrap_future(self._opened)
        except OSError as exc:
            self.error = str(exc)
            return None

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = self._event_loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def _tick(self) -> None:
        opened = await self.opened()
        if opened is None:
            return  # the output's runner says so and buffers in memory instead
        if opened.metrics or opened.cut or opened.ack_lost:
            self._report_open(opened)
        while not self._closed:
            await asyncio.sleep(WRITE_EVERY)
            with contextlib.suppress(Exception):
                await self._write_pending()
                if self._dirty_since is not None \
                        and time.monotonic() - self._synced_at >= self.flush_interval:
                    await self._run(self._sync)

    def _report_open(self, opened: Opened) -> None:
        for cut in opened.cut:
            self.log.warning("disk buffer: damaged tail cut at the last good record; "
                             "everything before it is kept", cut=cut)
        if opened.ack_lost:
            self.log.warning("disk buffer: its ack mark was lost; everything in it is sent "
                             "again (InfluxDB keeps one copy of each point)")
        if opened.metrics:
            self.log.info("disk buffer: replaying what was left unsent", metrics=opened.metrics,
                          segments=opened.segments, bytes=opened.size,
                          oldest=time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                               time.localtime(opened.oldest_ns / 1e9)))

    async def _write_pending(self) -> None:
        """Append what is pending to the newest segment (one write at a time)."""
        while self._writing is not None:
            await self._writing
        if not self._pending or await self.opened() is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writing = future
        try:
            batch = list(self._pending)
            self._pending.clear()
            lines = [m.line_bytes(True) for m in batch]
            written, error = await self._run(self._write, lines)
            if error:
                if error != self.error:
                    self.log.error("disk buffer: write failed; metrics wait in memory (up to "
                                   "metric_buffer_limit) and it is tried again each second",
                                   error=error)
                self.error = error
                self._pending.extendleft(reversed(batch[written:]))
                return
            if self.error:
                self.log.info("disk buffer: writing again")
            self.error = ""
        finally:
            self._writing = None
            future.set_result(None)

    async def read(self, count: int) -> tuple[Sequence[Metric], int]:
        if await self.opened() is None:
            return [], -1
        await self._write_pending()
        self._take_loaded()
        have = self._head_count()
        if have < count and self._disk_metrics > have:
            await self._run(self._load, count - have)
            self._take_loaded()
        taken: list[Chunk] = []
        need = count
        for chunk in self._head:
            if need <= 0:
                break
            start = max(0, self._acked + 1 - chunk.first_seq)
            stop = min(len(chunk), start + need)
            if stop > start:
                taken.append(chunk.part(start, stop))
                need -= stop - start
        if not taken:
            self._inflight = None
            return [], -1
        self._inflight = (taken[0].first_seq, taken[-1].last_seq)
        self._inflight_dropped = 0
        return LineBatch(taken), taken[-1].last_seq

    def _take_loaded(self) -> None:
        loaded, head = self._loaded, self._head
        while loaded:
            chunk = loaded.popleft()
            # a read position reset after a deletion may read some again
            if not head or chunk.first_seq > head[-1].last_seq:
                head.append(chunk)
        self._trim_head()

    def _head_count(self) -> int:
        acked = self._acked
        return sum(len(c) - max(0, acked + 1 - c.first_seq) for c in self._head)

    def _trim_head(self) -> None:
        head, acked, floor = self._head, self._acked, self._floor
        while head and (head[0].last_seq <= acked or head[0].last_seq < floor):
            head.popleft()

    def ack(self, last_seq: int) -> int:
        if last_seq <= self._acked:
            return 0
        inflight, self._inflight = self._inflight, None
        first = self._acked + 1 if inflight is None else max(self._acked + 1, inflight[0])
        removed = max(0, last_seq - first + 1)
        if self._inflight_dropped:
            # Counted as dropped when their segment was deleted mid-write, yet delivered.
            self.dropped -= self._inflight_dropped
            self._inflight_dropped = 0
        self._acked = last_seq
        self._disk_metrics -= max(0, last_seq + 1 - max(first, self._floor))
        self._trim_head()
        if not self._ack_queued and not self._closed:
            self._ack_queued = True
            asyncio.get_running_loop().run_in_executor(self._pool, self._persist_ack)
        return removed

    def _dropped_segment(self, seg_first: int, seg_next: int, count: int,
                         held_s: float | None) -> None:
        """(On the loop) the thread deleted the oldest segment to stay under the bound."""
        self.dropped += count
        if self._inflight is not None:
            first, last = self._inflight
            self._inflight_dropped += max(0, min(seg_next, last + 1) - max(seg_first, first))
        self._trim_head()
        if self.on_drop is not None:
            self.on_drop(count, held_s)

    def oldest_age(self) -> float | None:
        for chunk in self._head:
            if chunk.last_seq > self._acked and chunk.added_ns:
                return max(0.0, time.time() - chunk.added_ns / 1e9)
        for seg in list(self._segments):
            if seg.next_seq > self._acked + 1 and seg.first_added_ns:
                return max(0.0, time.time() - seg.first_added_ns / 1e9)
        if self._pending:
            return time.monotonic() - self._pending_since
        return None

    def describe(self) -> dict[str, Any]:
        return {"buffer": "disk", "buffer_dir": str(self.directory),
                "buffer_bytes": self._disk_bytes, "buffer_max_bytes": self.max_bytes,
                "buffer_segments": len(self._segments), "buffer_pending": len(self._pending),
                "buffer_error": self.error}

    def reconfigure(self, max_bytes: int, limit: int, flush_interval: float) -> None:
        """New bounds after a reload (a smaller bound takes effect at the next write)."""
        self.max_bytes = int(max_bytes)
        self.limit = limit
        self.flush_interval = float(flush_interval)

    async def close(self) -> None:
        """Write what is pending, sync, release the folder (the data stays for the next run)."""
        if self._closed:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._write_pending()
        self._closed = True
        with contextlib.suppress(Exception):
            await self._run(self._close)
        self._pool.shutdown(wait=True)

    async def take_pending(self) -> list[Metric]:
        """What is waiting to be written, emptying the list (the folder turned out unusable)."""
        pending = list(self._pending)
        self._pending.clear()
        return pending

    async def take_all(self, limit: int | None = None) -> list[Metric]:
        """Everything buffered (the newest ``limit`` of it), as metrics, oldest first, emptying
        the folder (a switch to the memory ring). Older ones beyond ``limit`` are dropped,
        counted and reported."""
        await self._write_pending()
        skip = 0 if limit is None else max(0, len(self) - limit)
        while skip > 0:
            batch, last = await self.read(min(skip, 50_000))
            if last < 0:
                break
            skip -= self.ack(last)
            self.dropped += len(batch)
            if self.on_drop is not None:
                self.on_drop(len(batch), None)
        batch, last = await self.read(max(1, len(self)))
        metrics = list(batch)
        if last >= 0:
            self.ack(last)
        return metrics

    # -- the buffer's thread ------------------------------------------------------------

    def _open(self) -> Opened:
        directory = self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DiskBufferError(f"{directory} is in use by another process") from None
        except OSError as exc:
            raise DiskBufferError(f"cannot use {directory}: {exc.strerror or exc}") from None
        ack_path = directory / "ack"
        acked = read_ack(ack_path)
        ack_lost = acked < 0 and ack_path.exists() and ack_path.stat().st_size > 0
        cuts: list[str] = []
        segments: list[Segment] = []
        for path in sorted(directory.glob("*.seg")):
            segment, cut = scan(path)
            if cut is not None:
                cuts.append(f"{path.name} at byte {cut.offset}: {cut.reason} "
                            f"({cut.dropped_bytes} bytes cut)")
            if segment is not None:
                segments.append(segment)
        for segment in segments:
            if segment.next_seq - 1 <= acked:
                segment.path.unlink()
            else:
                self._segments.append(segment)
        self._acked = acked
        self._written_ack = acked
        last = max([acked] + [s.next_seq - 1 for s in segments])
        self._next_seq = last + 1
        self._floor = max(acked + 1, self._segments[0].first_seq if self._segments else 0)
        self._disk_metrics = sum(s.next_seq - max(s.first_seq, acked + 1)
                                 for s in self._segments)
        self._disk_bytes = sum(s.size for s in self._segments)
        self._ack_fd = os.open(ack_path, os.O_RDWR | os.O_CREAT, 0o600)
        if self._segments:
            self._read_at = (self._segments[0].path, len(FILE_HEADER))
            tail = self._segments[-1]
            self._fd = os.open(tail.path, os.O_WRONLY | os.O_APPEND)
        return Opened(self._disk_metrics, len(self._segments), self._disk_bytes,
                      self._segments[0].first_added_ns if self._segments else 0, cuts, ack_lost)

    def _new_segment(self) -> Segment:
        if self._fd is not None:
            os.fdatasync(self._fd)
            os.close(self._fd)
        path = self.directory / segment_name(self._next_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        os.write(self._fd, FILE_HEADER)
        _fsync_dir(self.directory)
        segment = Segment(path, self._next_seq, self._next_seq, len(FILE_HEADER))
        self._segments.append(segment)
        self._disk_bytes += segment.size
        if self._read_at is None:
            self._read_at = (path, len(FILE_HEADER))
        return segment

    def _write(self, lines: list[bytes]) -> tuple[int, str]:
        """Append ``lines`` as records; returns how many were written and the error that
        stopped it ("" when all were)."""
        now_ns = time.time_ns()
        written = 0
        for start in range(0, len(lines), RECORD_METRICS):
            lengths, data = encode_lines(lines[start:start + RECORD_METRICS])
            try:
                self._append(lengths, data, now_ns)
            except OSError as exc:
                return written, f"{exc.strerror or exc} ({self.directory})"
            written += len(lengths)
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._enforce_bound()
        if time.monotonic() - self._synced_at >= self.flush_interval:
            with contextlib.suppress(OSError):
                self._sync()
        return written, ""

    def _append(self, lengths: list[int], data: bytes, now_ns: int) -> None:
        segment = self._segments[-1] if self._segments else None
        if segment is None or self._fd is None or segment.size >= self.segment_bytes:
            segment = self._new_segment()
        record = encode_record(self._next_seq, now_ns, lengths, data)
        count = len(lengths)
        assert self._fd is not None
        try:
            done = os.write(self._fd, record)
            if done != len(record):
                raise OSError(f"short write ({done} of {len(record)} bytes)")
        except OSError:
            with contextlib.suppress(OSError):  # no half record in the middle of the file
                os.truncate(segment.path, segment.size)
            raise
        if not segment.records:
            segment.first_seq = self._next_seq
            segment.first_added_ns = now_ns
        segment.records += 1
        segment.size += len(record)
        segment.next_seq = self._next_seq + count
        self._next_seq += count
        self._disk_bytes += len(record)
        self._disk_metrics += count

    def _enforce_bound(self) -> None:
        loop_call = self._loop_call()
        while self._disk_bytes > self.max_bytes and len(self._segments) > 1:
            segment = self._segments.popleft()
            lost = segment.next_seq - max(segment.first_seq, self._acked + 1, self._floor)
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            self._disk_bytes -= segment.size
            self._floor = max(self._floor, segment.next_seq)
            if self._read_at is not None and self._read_at[0] == segment.path:
                self._read_at = (self._segments[0].path, len(FILE_HEADER))
            if lost > 0:
                self._disk_metrics -= lost
                held = time.time() - segment.first_added_ns / 1e9 \
                    if segment.first_added_ns else None
                loop_call(self._dropped_segment, segment.first_seq, segment.next_seq, lost, held)

    def _loop_call(self) -> Any:
        loop = self._event_loop

        def call(fn: Any, *args: Any) -> None:
            if loop is None or loop.is_closed():
                fn(*args)
            else:
                loop.call_soon_threadsafe(fn, *args)

        return call

    def _load(self, count: int) -> None:
        """Up to about ``count`` metrics (or READ_BYTES) of records from the read position,
        into :attr:`_loaded`."""
        have = 0
        while have < count and self._read_at is not None:
            path, offset = self._read_at
            index = next((i for i, s in enumerate(self._segments) if s.path == path), None)
            if index is None:  # deleted under us (acknowledged or dropped)
                self._read_at = (self._segments[0].path, len(FILE_HEADER)) \
                    if self._segments else None
                continue
            segment = self._segments[index]
            if offset >= segment.size:
                if index + 1 >= len(self._segments):
                    break
                self._read_at = (self._segments[index + 1].path, len(FILE_HEADER))
                continue
            try:
                got, offset, reason = read_records(path, offset, READ_BYTES)
            except OSError as exc:  # gone or unreadable: what it held is lost, say so
                self._unreadable(segment, exc)
                continue
            if reason:
                self.log.error("disk buffer: damaged record; the rest of the segment is "
                               "skipped", segment=path.name, offset=offset, reason=reason)
                offset = segment.size
            self._read_at = (path, offset)
            for chunk in got:
                if chunk.last_seq >= self._floor:
                    self._loaded.append(chunk)
                    have += len(chunk)

    def _unreadable(self, segment: Segment, exc: OSError) -> None:
        self.error = f"cannot read {segment.path.name}: {exc.strerror or exc}"
        self.log.error("disk buffer: a segment cannot be read; its metrics are lost",
                       segment=str(segment.path), error=str(exc))
        if self._segments and self._segments[-1] is segment and self._fd is not None:
            with contextlib.suppress(OSError):  # the next write starts a new segment
                os.close(self._fd)
            self._fd = None
        oldest = bool(self._segments) and self._segments[0] is segment
        with contextlib.suppress(ValueError):
            self._segments.remove(segment)
        self._disk_bytes -= segment.size
        lost = segment.next_seq - max(segment.first_seq, self._acked + 1, self._floor)
        if oldest:  # sequence numbers below the floor are gone; later gaps are just gaps
            self._floor = max(self._floor, segment.next_seq)
        self._read_at = (self._segments[0].path, len(FILE_HEADER)) if self._segments else None
        if lost > 0:
            self._disk_metrics -= lost
            self._loop_call()(self._dropped_segment, segment.first_seq, segment.next_seq, lost,
                              None)

    def _persist_ack(self) -> None:
        try:
            self._write_ack()
        except OSError as exc:  # the next ack tries again; a restart may send some twice
            self.error = f"cannot write the ack mark: {exc.strerror or exc}"

    def _write_ack(self) -> None:
        self._ack_queued = False
        acked = self._acked
        if acked == self._written_ack or self._ack_fd is None:
            return
        write_ack(self._ack_fd, acked)
        self._written_ack = acked
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        while len(self._segments) > 1 and self._segments[0].next_seq - 1 <= acked:
            segment = self._segments.popleft()
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            self._disk_bytes -= segment.size
            self._floor = max(self._floor, segment.next_seq)
        if time.monotonic() - self._synced_at >= self.flush_interval:
            self._sync()

    def _sync(self) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)
        if self._ack_fd is not None:
            os.fdatasync(self._ack_fd)
        self._synced_at = time.monotonic()
        self._dirty_since = None

    def _close(self) -> None:
        try:
            self._write_ack()
            self._sync()
        finally:
            self._release()

    def _release(self) -> None:
        for name in ("_fd", "_ack_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)


def move_folder(old: Path, new: Path) -> bool:
    """Move a closed buffer's files to another folder, unless that one already holds data.
    True if they were moved."""
    new.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(new.glob("*.seg")):
        return False
    for path in [*sorted(old.glob("*.seg")), old / "ack"]:
        if path.exists():
            shutil.move(str(path), str(new / path.name))
    _fsync_dir(new)
    return True


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
