"""Frame pixels for rows of the frame table: JPEG files, zip members or video frames.

`source` (relative to the dataset root) is a JPEG path, `<zip path>/<member>`
for the BP4D zip form (split at the first `.zip/`), or a video path, in which
case `index` (0-based) picks the frame: the video is read sequentially once,
seeking forward only by grabbing.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import cv2
import numpy as np
import pandas as pd

from ..errors import FauError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".m4v")


def split_zip_source(source: str) -> tuple[str, str] | None:
    """'2D+3D/F001.zip/F001/T1/1.jpg' -> ('2D+3D/F001.zip', 'F001/T1/1.jpg'); None if no zip."""
    i = source.find(".zip/")
    return None if i < 0 else (source[:i + 4], source[i + 5:])


def decode_jpeg(data: bytes, where: str, grey: bool = False) -> np.ndarray:
    """JPEG bytes -> BGR (or grey) image; FauError naming `where` if empty or corrupt.

    Grey decoding skips the chroma planes: about a third less work."""
    if not data:
        raise FauError(f"{where}: empty image file (0 bytes)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise FauError(f"{where}: corrupt or unreadable image")
    return img


def truncation(path: Path) -> Optional[str]:
    """Why the video file is cut short, from its container's own chunk sizes,
    or None: AVI (RIFF chunks) and MP4 / MOV (top-level boxes) record how
    long they are, and a file that ends before that is truncated (OpenCV
    reads such a file as complete, its last frame half-decoded). Other
    containers: None (not checked)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"RIFF":  # AVI: RIFF 'AVI ' chunk, then OpenDML 'AVIX' chunks
            pos = 0
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid != b"RIFF":
                    break
                end = pos + 8 + n + (n & 1)
                if pos + 8 + n > size:
                    return f"file is {size} bytes, its AVI chunk ends at byte {pos + 8 + n}"
                pos = end
            return None
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):  # ISO base media (MP4, MOV)
            pos = 0
            while pos + 8 <= size:
                f.seek(pos)
                n, kind = struct.unpack(">I4s", f.read(8))
                if n == 1:
                    n = struct.unpack(">Q", f.read(8))[0]
                elif n == 0:  # the last box, to the end of the file
                    return None
                if n < 8:
                    return None  # not a box header: leave the file to the decoder
                if pos + n > size:
                    return f"file is {size} bytes, its '{kind.decode(errors='replace')}' box ends at byte {pos + n}"
                pos += n
        return None


def open_video(path: Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise FauError(f"{path}: video file missing")
    cut = truncation(path)
    if cut is not None:
        raise FauError(f"{path}: truncated video ({cut}); copy it again")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise FauError(f"{path}: unreadable video (OpenCV cannot open it)")
    return cap


def video_frame_count(path: Path) -> int:
    """Number of decodable frames (container count, checked by reading the first frame)."""
    cap = open_video(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok = cap.grab()
        if not ok:
            raise FauError(f"{path}: unreadable video (no decodable frame)")
        if n <= 0:  # container without a count: read through
            n = 1
            while cap.grab():
                n += 1
        return n
    finally:
        cap.release()


def iter_frames(root: str | Path, rows: pd.DataFrame, grey: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, BGR image) for each row (columns `frame`, `source`,
    `index`) in the rows' order; videos must be in increasing `index` order.
    `grey`: single-channel images (all the landmark stage needs)."""
    root = Path(root)
    zips: dict[str, zipfile.ZipFile] = {}
    caps: dict[str, tuple[cv2.VideoCapture, int]] = {}
    try:
        for frame, source, index in zip(rows["frame"], rows["source"], rows["index"]):
            source = str(source)
            frame, index = int(frame), int(index)
            zipped = split_zip_source(source)
            if zipped is not None:
                zpath, member = zipped
                if zpath not in zips:
                    try:
                        zips[zpath] = zipfile.ZipFile(root / zpath)
                    except (OSError, zipfile.BadZipFile) as e:
                        raise FauError(f"{root / zpath}: unreadable zip ({e})") from None
                try:
                    data = zips[zpath].read(member)
                except KeyError:
                    raise FauError(f"{root / zpath}: no member {member}") from None
                except (zipfile.BadZipFile, OSError) as e:
                    raise FauError(f"{root / zpath}: member {member} unreadable ({e})") from None
                yield frame, decode_jpeg(data, f"{root / zpath}:{member}", grey)
            elif source.lower().endswith(VIDEO_SUFFIXES):
                path = root / source
                if source not in caps:
                    caps[source] = (open_video(path), -1)
                cap, pos = caps[source]
                if index <= pos:
                    raise FauError(f"{path}: frames must be read in increasing order (index {index} after {pos})")
                while pos < index - 1:
                    if not cap.grab():
                        raise FauError(f"{path}: video ends before frame index {index} (read {pos + 1} frames)")
                    pos += 1
                ok, img = cap.read()
                if not ok or img is None:
                    raise FauError(f"{path}: cannot decode frame index {index} (corrupt or truncated video)")
                caps[source] = (cap, index)
                yield frame, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if grey else img
            else:
                path = root / source
                try:
                    data = path.read_bytes()
                except OSError as e:
                    raise FauError(f"{path}: cannot read image ({e.strerror})") from None
                yield frame, decode_jpeg(data, str(path), grey)
    finally:
        for z in zips.values():
            z.close()
        for cap, _ in caps.values():
            cap.release()



def read_ahead(root: str | Path, rows: pd.DataFrame, grey: bool = False, depth: int = 16
               ) -> Iterator[tuple[int, np.ndarray]]:
    """`iter_frames(root, rows, grey)`, decoded up to `depth` frames ahead in
    a child process (`prefetch`).

    Decoding then runs beside the consumer on a second core: dlib holds the
    GIL for a whole predictor call, so a decoding *thread* would wait on it.
    A yielded array is valid until the next frame is requested. Errors keep
    their place: the frames before a corrupt one arrive, then its FauError is
    raised here. Stopping early ends the child. Without fork (not Linux),
    with depth <= 0 or a single row: plain `iter_frames`.
    """
    if depth <= 0 or len(rows) < 2 or not can_prefetch():
        yield from iter_frames(root, rows, grey)
        return
    first = iter_frames(root, rows.iloc[:1], grey)
    try:
        item0 = next(first)  # sizes the ring's slots
    finally:
        first.close()
    yield from prefetch(item0, lambda: iter_frames(root, rows.iloc[1:], grey), depth, where=str(root))


Payload = Union[np.ndarray, tuple[np.ndarray, ...]]  # one image, or several (e.g. colour + grey)
_ALIGN = 64  # byte alignment of each array inside a ring slot


def can_prefetch() -> bool:
    """Whether `prefetch` can run a child process (needs fork)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _layout(arrays: tuple[np.ndarray, ...]) -> tuple[list[int], int]:
    """Byte offsets of `arrays` packed into one slot, and the bytes used."""
    offsets, pos = [], 0
    for a in arrays:
        offsets.append(pos)
        pos += -(-a.nbytes // _ALIGN) * _ALIGN
    return offsets, pos


def prefetch(first: tuple[int, Payload], rest: Callable[[], Iterator[tuple[int, Payload]]], depth: int = 16,
             where: str = "frames") -> Iterator[tuple[int, Payload]]:
    """`first`, then the items of `rest()`, where `rest()` runs in a child
    process up to `depth` items ahead of the consumer.

    Items are (frame number, payload): an array or a tuple of arrays. They
    travel through a shared-memory ring of `depth` slots, each sized for
    `first`'s payload (a larger one is sent whole through the pipe), so the
    consumer copies nothing: a yielded array is valid until the next item is
    requested. An exception in `rest()` is raised here after the items before
    it. Stopping early ends the child. `rest` is called in the child (after
    fork): it opens its own files. Without fork or with depth <= 0 it runs
    here."""
    if depth <= 0 or not can_prefetch():
        yield first
        yield from rest()
        return
    arrays0 = first[1] if isinstance(first[1], tuple) else (first[1],)
    slot_bytes = max(_ALIGN, _layout(arrays0)[1])
    ring = mmap.mmap(-1, slot_bytes * depth)  # anonymous, shared with the forked child
    ctx = multiprocessing.get_context("fork")
    free = ctx.Semaphore(depth)  # slots the child may fill
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_fill_ring, args=(rest, ring, slot_bytes, depth, free, send),
                        name="fau-frame-reader", daemon=True)
    child.start()
    send.close()  # the child holds the only write end: EOF when it dies
    try:
        yield first
        while True:
            try:
                msg = recv.recv()
            except EOFError:
                child.join()
                raise FauError(f"{where}: frame reader process died (exit code {child.exitcode})") from None
            kind = msg[0]
            if kind == "done":
                return
            if kind == "error":
                raise msg[1]
            if kind == "whole":  # larger than a slot: sent whole
                yield msg[1], msg[2]
                continue
            _, frame, slot, specs, is_tuple = msg
            base = slot * slot_bytes
            views = tuple(np.ndarray(shape, dtype, buffer=ring, offset=base + off) for shape, dtype, off in specs)
            yield frame, views if is_tuple else views[0]
            free.release()  # the consumer asked for the next item: this slot is done
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        recv.close()


def _fill_ring(rest, ring, slot_bytes, depth, free, send) -> None:
    """Child process of `prefetch`: decode, copy into the next free slot, announce."""
    cv2.setNumThreads(0)  # OpenCV's thread pool does not survive fork
    slot = 0
    try:
        for frame, payload in rest():
            is_tuple = isinstance(payload, tuple)
            arrays = payload if is_tuple else (payload,)
            offsets, used = _layout(arrays)
            if used > slot_bytes:
                send.send(("whole", frame, payload))
                continue
            free.acquire()
            base = slot * slot_bytes
            for a, off in zip(arrays, offsets):
                np.ndarray(a.shape, a.dtype, buffer=ring, offset=base + off)[...] = a
            send.send(("frame", frame, slot, [(a.shape, a.dtype.str, off) for a, off in zip(arrays, offsets)],
                       is_tuple))
            slot = (slot + 1) % depth
        send.send(("done",))
    except Exception as e:  # raised in the parent, at this item's place
        send.send(("error", e))
    finally:
        send.close()
