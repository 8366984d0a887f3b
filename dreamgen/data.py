"""Datasets on disk in the LeRobot v2.1 layout, so LeRobot's loader and GR00T's tools read ours.

    root/
      meta/info.json              layout, features, totals (+ our own info under "dreamgen")
      meta/episodes.jsonl         {"episode_index", "tasks", "length"} per episode
      meta/episodes_stats.jsonl   {"episode_index", "stats": {feature: {min,max,mean,std,count}}}
      meta/tasks.jsonl            {"task_index", "task"}
      meta/episodes_meta.jsonl    {"episode_index", "meta"}: provenance; not part of LeRobot, ignored by it
      data/chunk-000/episode_000000.parquet
      videos/chunk-000/observation.images.<camera>/episode_000000.mp4

Videos are lossless H.264 in RGB (libx264rgb, qp=0): a generated video is the training data
itself, so the store must hand back exactly the pixels that were written.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from fractions import Fraction
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm  # plain text bars: notebooks here have no widget front end

from dreamgen.episode import Episode

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
STATE, ACTION = "observation.state", "action"
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
META_FILES = ("info.json", "episodes.jsonl", "episodes_stats.jsonl", "tasks.jsonl")
EPISODES_META = "episodes_meta.jsonl"

VIDEO_ENCODER = "libx264rgb"
# Measured at 64x64 on one CPU: "veryfast" stores smooth scenes in ~190 B/frame against ~350 for
# "ultrafast", at ~7000 frames/s; "medium" saves only 4-20% more and is 3x slower on noisy frames.
VIDEO_PRESET = "veryfast"
# What the file holds, as LeRobot records it (ffprobe's codec_name and pix_fmt): H.264 with
# planar RGB, which decodes back to rgb24 without any colour conversion.
VIDEO_CODEC, VIDEO_PIX_FMT = "h264", "gbrp"


class DatasetError(ValueError):
    """A dataset on disk breaks the layout; `problems` lists what is wrong, one line each."""

    def __init__(self, root, problems: list[str]):
        self.problems = problems
        super().__init__(f"invalid dataset at {root}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class DatasetInfo:
    """What `write_dataset` wrote: where, how much, and the full info.json."""

    root: Path
    num_episodes: int
    num_frames: int
    tasks: tuple[str, ...]
    info: dict


# --------------------------------------------------------------------------- video

def write_video(path, frames: np.ndarray, fps: int, preset: str = VIDEO_PRESET) -> None:
    """Write frames (T, H, W, 3) uint8 to an mp4, losslessly (H.264 RGB, qp=0)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T,H,W,3) uint8, got {frames.shape} {frames.dtype}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        # A Fraction lets non-integer rates through (dreamed videos: 10 / frame_stride = 2.5 fps).
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(VIDEO_ENCODER, rate=rate, options={"qp": "0", "preset": preset})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # flush the frames the encoder still holds


def read_video(path) -> np.ndarray:
    """Decode every frame of a video file to (T, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        if not frames:
            return np.zeros((0, stream.height, stream.width, 3), np.uint8)
    return np.stack(frames)


@dataclass(frozen=True)
class VideoRoundTrip:
    max_abs_error: int
    mean_abs_error: float
    bytes_per_frame: float
    encode_fps: float
    decode_fps: float


def measure_video_round_trip(frames: np.ndarray, fps: int = 15, preset: str = VIDEO_PRESET) -> VideoRoundTrip:
    """Encode frames (T, H, W, 3) uint8 the way datasets store them, decode, and compare.

    Returns the pixel error (0 for a lossless store), file size per frame and the speeds, so a
    notebook can report what the storage costs and that it loses nothing.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.mp4"
        t0 = time.perf_counter()
        write_video(path, frames, fps, preset)
        t1 = time.perf_counter()
        decoded = read_video(path)
        t2 = time.perf_counter()
        size = path.stat().st_size
    if decoded.shape != frames.shape:
        raise DatasetError(path, [f"decoded {decoded.shape}, wrote {frames.shape}"])
    err = np.abs(decoded.astype(np.int16) - frames.astype(np.int16))
    n = len(frames)
    return VideoRoundTrip(int(err.max(initial=0)), float(err.mean()) if n else 0.0,
                          size / max(n, 1), n / (t1 - t0), n / (t2 - t1))


# --------------------------------------------------------------------------- statistics

def _vector_stats(x: np.ndarray) -> dict:
    """LeRobot's per-feature stats over time: x (T,) -> shape (1,) lists, x (T, D) -> (D,)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [len(x)]}


def _image_stats(frames: np.ndarray) -> dict:
    """Per-channel stats of (T, H, W, 3) uint8 in [0, 1], shaped (3, 1, 1) as LeRobot writes them.

    A 256-bin histogram per channel gives exact moments without a float copy of the video.
    """
    values = np.arange(256)
    hist = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)])
    n = hist.sum(1)
    mean = hist @ values / n
    var = (hist * (values[None] - mean[:, None]) ** 2).sum(1) / n
    lo = np.array([np.flatnonzero(h)[0] for h in hist])
    hi = np.array([np.flatnonzero(h)[-1] for h in hist])
    as_chw = lambda v: (np.asarray(v, np.float64) / 255).reshape(3, 1, 1).tolist()
    # LeRobot counts the frames it sampled; we use every frame, so count is T.
    return {"min": as_chw(lo), "max": as_chw(hi), "mean": as_chw(mean), "std": as_chw(np.sqrt(var)),
            "count": [len(frames)]}


def aggregate_stats(episode_stats: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Pool per-episode stats into dataset stats, as LeRobot's aggregate_stats does.

    Means are count-weighted; variances pool within- and between-episode spread.
    """
    out = {}
    for key in episode_stats[0] if episode_stats else []:
        s = {k: np.stack([np.asarray(e[key][k], np.float64) for e in episode_stats]) for k in
             ("min", "max", "mean", "std", "count")}
        w = s["count"].reshape(-1, *[1] * (s["mean"].ndim - 1))
        total = w.sum(0)
        mean = (s["mean"] * w).sum(0) / total
        var = ((s["std"] ** 2 + (s["mean"] - mean) ** 2) * w).sum(0) / total
        out[key] = {"min": s["min"].min(0), "max": s["max"].max(0), "mean": mean, "std": np.sqrt(var),
                    "count": s["count"].sum(0).astype(np.int64)}
    return out


# --------------------------------------------------------------------------- writing

def _json_default(x):
    """Let numpy scalars and arrays through json, since meta dicts often carry them."""
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _dumps(obj) -> str:
    return json.dumps(obj, default=_json_default)


def _float_lists(x: np.ndarray) -> pa.Array:
    """(T, D) -> Arrow list<float32> column, one D-vector per row."""
    x = np.ascontiguousarray(x, np.float32)
    offsets = np.arange(0, x.size + 1, x.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(x.ravel()))


def _features(first: Episode, fps: int, video_key: str, state_names, action_names) -> dict:
    """info.json "features" for a dataset shaped like `first` (LeRobot's field names and order)."""
    h, w = first.frames.shape[1:3]
    features = {video_key: {
        "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
        "info": {"video.fps": float(fps), "video.height": h, "video.width": w, "video.channels": 3,
                 "video.codec": VIDEO_CODEC, "video.pix_fmt": VIDEO_PIX_FMT, "video.is_depth_map": False,
                 "has_audio": False, "video.encoder": VIDEO_ENCODER, "video.lossless": True}}}
    for key, array, names, prefix in ((STATE, first.states, state_names, "state"),
                                      (ACTION, first.actions, action_names, "action")):
        if array is None:
            continue
        names = list(names) if names is not None else [f"{prefix}_{i}" for i in range(array.shape[1])]
        if len(names) != array.shape[1]:
            raise ValueError(f"{key}: {len(names)} names for vectors of length {array.shape[1]}")
        features[key] = {"dtype": "float32", "shape": [array.shape[1]], "names": names}
    for key in INDEX_COLUMNS:
        features[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1], "names": None}
    return features


def _check_like_first(ep: Episode, first: Episode, i: int) -> None:
    """All episodes of a dataset share one frame size and one state/action layout."""
    if len(ep) == 0:
        raise ValueError(f"episode {i} has no frames")
    if ep.frames.shape[1:] != first.frames.shape[1:]:
        raise ValueError(f"episode {i}: frames {ep.frames.shape[1:]} differ from episode 0's {first.frames.shape[1:]}")
    for name in ("states", "actions"):
        a, b = getattr(ep, name), getattr(first, name)
        if (a is None) != (b is None) or (a is not None and a.shape[1] != b.shape[1]):
            shape = lambda x: None if x is None else x.shape[1:]
            raise ValueError(f"episode {i}: {name} {shape(a)} differ from episode 0's {shape(b)}")


def _write_episode(tmp: Path, ep: Episode, ep_index: int, start: int, task_index: int, fps: int,
                   video_key: str) -> dict:
    """Write one episode's parquet and video; return its LeRobot stats."""
    n = len(ep)
    columns = {}
    if ep.states is not None:
        columns[STATE] = _float_lists(ep.states)
    if ep.actions is not None:
        columns[ACTION] = _float_lists(ep.actions)
    frame_index = np.arange(n, dtype=np.int64)
    index_values = {"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index,
                    "episode_index": np.full(n, ep_index, np.int64), "index": start + frame_index,
                    "task_index": np.full(n, task_index, np.int64)}
    columns |= {k: pa.array(v) for k, v in index_values.items()}
    chunk = ep_index // CHUNKS_SIZE
    data_path = tmp / DATA_PATH.format(episode_chunk=chunk, episode_index=ep_index)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), data_path)
    write_video(tmp / VIDEO_PATH.format(episode_chunk=chunk, video_key=video_key, episode_index=ep_index),
                ep.frames, fps)

    stats = {video_key: _image_stats(ep.frames)}
    stats |= {k: _vector_stats(v) for k, v in ((STATE, ep.states), (ACTION, ep.actions)) if v is not None}
    return stats | {k: _vector_stats(v) for k, v in index_values.items()}


def write_dataset(root, episodes: Iterable[Episode], fps: int, robot_type: str, camera: str = "top",
                  state_names=None, action_names=None, extra_info: dict | None = None,
                  overwrite: bool = False, progress: bool = False) -> DatasetInfo:
    """Write episodes to `root` as a LeRobot v2.1 dataset and return what was written.

    episodes:  any iterable of Episode (a generator is consumed one episode at a time, so
               datasets larger than memory are fine). All must share the frame size (H, W) and
               have states (T, S) / actions (T, A) either all present with the same S, A, or
               all None (web videos: the columns are then left out).
    camera:    the video key becomes "observation.images.<camera>".
    state_names, action_names: S / A names for info.json (default state_0, ... / action_0, ...).
    extra_info: JSON-able dataset-level provenance, stored in info.json under "dreamgen".
    overwrite: replace a non-empty `root`; otherwise that is an error.

    Everything is written into a hidden sibling directory that is renamed to `root` only once
    complete, so a crash never leaves a dataset that looks whole. When overwriting, the old
    dataset is removed only then, which also lets `episodes` stream from the dataset being replaced.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} exists and is not empty; pass overwrite=True to replace it")
    video_key = f"observation.images.{camera}"
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        (tmp / "meta").mkdir()
        tasks: dict[str, int] = {}
        first, num_frames, num_episodes = None, 0, 0
        with open(tmp / "meta/episodes.jsonl", "w") as f_eps, \
                open(tmp / "meta/episodes_stats.jsonl", "w") as f_stats, \
                open(tmp / f"meta/{EPISODES_META}", "w") as f_meta:
            for i, ep in enumerate(tqdm(episodes, desc=f"writing {root.name}", unit="ep", disable=not progress)):
                first = ep if first is None else first
                _check_like_first(ep, first, i)
                task_index = tasks.setdefault(ep.task, len(tasks))
                stats = _write_episode(tmp, ep, i, num_frames, task_index, fps, video_key)
                f_eps.write(_dumps({"episode_index": i, "tasks": [ep.task], "length": len(ep)}) + "\n")
                f_stats.write(_dumps({"episode_index": i, "stats": stats}) + "\n")
                f_meta.write(_dumps({"episode_index": i, "meta": ep.meta}) + "\n")
                num_frames += len(ep)
                num_episodes = i + 1
        if first is None:
            raise ValueError(f"{root}: no episodes to write (the episodes given are empty); nothing was written. "
                             "Fix: pass at least one Episode")
        with open(tmp / "meta/tasks.jsonl", "w") as f:
            f.writelines(_dumps({"task_index": j, "task": t}) + "\n" for t, j in tasks.items())
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
            "total_episodes": num_episodes, "total_frames": num_frames, "total_tasks": len(tasks),
            "total_videos": num_episodes, "total_chunks": -(-num_episodes // CHUNKS_SIZE),
            "chunks_size": CHUNKS_SIZE, "fps": fps, "splits": {"train": f"0:{num_episodes}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": _features(first, fps, video_key, state_names, action_names),
        }
        if extra_info is not None:
            info["dreamgen"] = extra_info
        (tmp / "meta/info.json").write_text(json.dumps(info, indent=4, default=_json_default))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DatasetInfo(root, num_episodes, num_frames, tuple(tasks), info)


# --------------------------------------------------------------------------- reading

def _read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _episode_path(info: dict, template_key: str, ep_index: int, video_key: str | None = None) -> str:
    chunk = ep_index // info.get("chunks_size", CHUNKS_SIZE)
    return info[template_key].format(episode_chunk=chunk, episode_index=ep_index, video_key=video_key)


def vector_column(table: pa.Table, key: str) -> np.ndarray | None:
    """A feature column as (T, D) float32, or None if absent: a list<float> (or fixed-size list)
    column, or a plain numeric one, which is how LeRobot stores a feature of shape [1] (D = 1)."""
    if key not in table.column_names:
        return None
    col = table.column(key)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy().astype(np.float32).reshape(len(col), 1)
    return pc.list_flatten(col).to_numpy().astype(np.float32).reshape(len(col), -1)


class Dataset:
    """Read a LeRobot v2.1 dataset (ours or anyone's with one camera or more).

    Metadata is read once on construction; parquet files and videos are read per episode.
    Unreadable metadata or parquet files raise DatasetError naming the file; beyond that it
    trusts the layout: run `validate_dataset` for a full diagnosis of a broken dataset.
    `camera` picks the video that `episode()` returns as frames (default: the first one).
    """

    def __init__(self, root, camera: str | None = None):
        self.root = Path(root)
        meta = self.root / "meta"
        fix = f"Fix: point at a dataset folder, or run dreamgen.data.validate_dataset({str(root)!r}) for a diagnosis"
        if not self.root.is_dir():
            raise DatasetError(root, [f"no such folder. {fix}"])
        name = "info.json"
        try:  # `name` tracks the file being read, so an error can say which one is broken
            self.info: dict = json.loads((meta / name).read_text())
            name = "tasks.jsonl"
            self.tasks: list[str] = [t["task"] for t in sorted(_read_jsonl(meta / name), key=lambda t: t["task_index"])]
            name = "episodes.jsonl"
            self.episodes: list[dict] = _read_jsonl(meta / name)
            name = "episodes_stats.jsonl"
            self.episodes_stats: list[dict] = [e["stats"] for e in _read_jsonl(meta / name)]
        except FileNotFoundError:
            raise DatasetError(root, [f"meta/{name} is missing. {fix}"]) from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise DatasetError(root, [f"meta/{name} is not valid ({type(err).__name__}: {err}). {fix}"]) from None
        if not isinstance(self.info.get("fps"), (int, float)) or self.info["fps"] <= 0:
            raise DatasetError(root, [f"meta/info.json fps is {self.info.get('fps')!r}; it must be a positive "
                                      "number. Fix: rewrite the dataset with dreamgen.data.write_dataset"])
        extra = meta / EPISODES_META
        by_index = {e["episode_index"]: e["meta"] for e in _read_jsonl(extra)} if extra.exists() else {}
        self.episodes_meta: list[dict] = [by_index.get(i, {}) for i in range(self.num_episodes)]
        self.video_keys = [k for k, f in self.info["features"].items() if f["dtype"] == "video"]
        self.video_key = f"observation.images.{camera}" if camera else self.video_keys[0]

    @property
    def fps(self) -> int:
        return self.info["fps"]

    @property
    def num_episodes(self) -> int:
        return self.info["total_episodes"]

    @property
    def num_frames(self) -> int:
        return self.info["total_frames"]

    @cached_property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Dataset-wide stats per feature (min, max, mean, std, count) pooled over episodes."""
        return aggregate_stats(self.episodes_stats)

    def data_path(self, i: int) -> Path:
        return self.root / _episode_path(self.info, "data_path", i)

    def video_path(self, i: int, video_key: str | None = None) -> Path:
        return self.root / _episode_path(self.info, "video_path", i, video_key or self.video_key)

    def episode(self, i: int) -> Episode:
        """Episode i with frames (T, H, W, 3) uint8 decoded, states/actions (T, D) float32 or None."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} not in a dataset of {self.num_episodes}")
        try:
            table = pq.read_table(self.data_path(i))
        except (OSError, pa.ArrowException) as err:  # missing, truncated or not parquet at all
            raise DatasetError(self.root, [f"episode {i}: parquet file {self.data_path(i).relative_to(self.root)} "
                                           f"is unreadable ({err}). Fix: re-create the dataset, or run "
                                           f"dreamgen.data.validate_dataset({str(self.root)!r}) for a diagnosis"]
                               ) from None
        task_index = table.column("task_index")[0].as_py()
        return Episode(frames=read_video(self.video_path(i)), task=self.tasks[task_index],
                       states=vector_column(table, STATE), actions=vector_column(table, ACTION),
                       meta=copy.deepcopy(self.episodes_meta[i]))  # callers may edit their copy

    def iter_episodes(self) -> Iterator[Episode]:
        return (self.episode(i) for i in range(self.num_episodes))

    def frames_table(self) -> pd.DataFrame:
        """Every parquet row of the dataset (no video), in episode order."""
        tables = [pq.read_table(self.data_path(i)) for i in range(self.num_episodes)]
        return pa.concat_tables(tables, promote_options="default").to_pandas()

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}: {self.num_episodes} episodes, {self.num_frames} frames, " \
               f"{len(self.tasks)} tasks, {self.fps} fps)"


# --------------------------------------------------------------------------- validation

def _check_episode(root: Path, info: dict, i: int, expected_len: int | None, start: int,
                   task_indices: set | None, decode_videos: bool) -> tuple[list[str], int]:
    """Problems with episode i, and its parquet row count (0 when unreadable)."""
    features, problems = info["features"], []
    data_rel = _episode_path(info, "data_path", i)
    try:
        table = pq.read_table(root / data_rel)
    except FileNotFoundError:
        return [f"episode {i}: parquet file {data_rel} is missing"], 0
    except Exception as e:  # pyarrow raises several types for a damaged file
        return [f"episode {i}: parquet file {data_rel} is unreadable ({e})"], 0
    n = table.num_rows
    if expected_len is not None and n != expected_len:
        problems.append(f"episode {i}: parquet has {n} rows but episodes.jsonl says length {expected_len}")

    columns = [k for k, f in features.items() if f["dtype"] != "video"]
    missing = [k for k in columns if k not in table.column_names]
    if missing:
        problems.append(f"episode {i}: parquet lacks the columns {missing} that info.json lists")
    col = {k: table.column(k).to_numpy() for k in INDEX_COLUMNS if k in table.column_names}
    if "episode_index" in col and (col["episode_index"] != i).any():
        problems.append(f"episode {i}: episode_index column holds {sorted(set(col['episode_index'].tolist()))}")
    if "frame_index" in col and not np.array_equal(col["frame_index"], np.arange(n)):
        problems.append(f"episode {i}: frame_index is not 0..{n - 1}")
    if "index" in col and n and not np.array_equal(col["index"], start + np.arange(n)):
        problems.append(f"episode {i}: index runs {col['index'][0]}..{col['index'][-1]}, expected "
                        f"{start}..{start + n - 1} (the global index must be contiguous)")
    if "timestamp" in col and "frame_index" in col and \
            not np.allclose(col["timestamp"], col["frame_index"] / info["fps"], atol=1e-4):
        problems.append(f"episode {i}: timestamps are not frame_index / fps")
    if task_indices is not None and "task_index" in col and (bad := set(col["task_index"].tolist()) - task_indices):
        problems.append(f"episode {i}: task_index {sorted(bad)} not in tasks.jsonl")
    for k in columns:
        shape = features[k]["shape"]
        if k in INDEX_COLUMNS or k not in table.column_names or len(shape) != 1:
            continue
        kind = table.column(k).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):  # LeRobot's layout of a shape-[1] feature
            if shape != [1]:
                problems.append(f"episode {i}: {k} is a plain column but info.json shape is {shape}")
            continue
        try:
            lengths = pc.list_value_length(table.column(k)).to_numpy(zero_copy_only=False)
        except pa.ArrowNotImplementedError:
            problems.append(f"episode {i}: {k} is not a list column")
            continue
        if (rows := np.flatnonzero(lengths != shape[0])).size:
            problems.append(f"episode {i}: {k} has length {lengths[rows[0]]} in row {rows[0]} "
                            f"({rows.size} bad rows), info.json shape is {shape}")

    for key in (k for k, f in features.items() if f["dtype"] == "video"):
        problems += _check_video(root, info, i, key, n, decode_videos)
    return problems, n


def _check_video(root: Path, info: dict, i: int, key: str, n: int, decode: bool) -> list[str]:
    rel = _episode_path(info, "video_path", i, key)
    if not (root / rel).exists():
        return [f"episode {i}: video {rel} is missing"]
    try:
        if decode:
            t, h, w = read_video(root / rel).shape[:3]
        else:  # the container header alone: fast, but blind to damage in the frame data
            with av.open(str(root / rel)) as c:
                s = c.streams.video[0]
                t, h, w = s.frames, s.height, s.width
    except Exception as e:  # PyAV raises assorted errors (InvalidDataError, EOFError, ...)
        reason = getattr(e, "strerror", None) or e  # strerror leaves out the long file path
        return [f"episode {i}: video {rel} is unreadable or truncated ({type(e).__name__}: {reason})"]
    problems = []
    if t != n:
        problems.append(f"episode {i}: video {rel} has {t} frames but the parquet has {n} rows")
    if [h, w] != info["features"][key]["shape"][:2]:
        problems.append(f"episode {i}: video {rel} is {h}x{w} (HxW) but info.json says "
                        f"{info['features'][key]['shape'][0]}x{info['features'][key]['shape'][1]}")
    return problems


def validate_dataset(root, decode_videos: bool = True) -> list[str]:
    """Check a dataset on disk against the LeRobot v2.1 layout; return its problems, one line
    each (empty list when fine). Never raises for a broken dataset.

    decode_videos: decode every video (catches truncation anywhere, ~2000 frames/s at 64x64);
    False reads only container headers.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root} is not a directory"]
    meta, loaded, problems = root / "meta", {}, []
    for name in META_FILES:
        try:
            text = (meta / name).read_text()
            loaded[name] = json.loads(text) if name.endswith(".json") else _read_jsonl(meta / name)
        except FileNotFoundError:
            problems.append(f"meta/{name} is missing")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problems.append(f"meta/{name} is not valid JSON ({e})")
    info = loaded.get("info.json")
    if info is None:
        return problems
    if info.get("codebase_version") != CODEBASE_VERSION:
        problems.append(f"codebase_version is {info.get('codebase_version')!r}, expected {CODEBASE_VERSION!r}")
    missing_keys = [k for k in ("fps", "features", "data_path", "video_path", "total_episodes") if k not in info]
    if missing_keys:
        return problems + [f"info.json lacks {missing_keys}"]
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:  # every timestamp check divides by it
        return problems + [f"info.json fps is {fps!r}; it must be a positive number of frames per second"]

    episodes = loaded.get("episodes.jsonl")
    tasks = loaded.get("tasks.jsonl")
    task_indices = {t.get("task_index") for t in tasks} if tasks is not None else None
    num_episodes = len(episodes) if episodes is not None else info["total_episodes"]
    if episodes is not None and [e.get("episode_index") for e in episodes] != list(range(num_episodes)):
        problems.append("episodes.jsonl episode_index is not 0..N-1 in order")

    start, parquet_frames = 0, 0
    for i in range(num_episodes):
        expected_len = episodes[i].get("length") if episodes is not None else None
        ep_problems, n = _check_episode(root, info, i, expected_len, start, task_indices, decode_videos)
        problems += ep_problems
        parquet_frames += n
        # A missing parquet must not shift every later episode's expected index.
        start += n or expected_len or 0

    # Totals in info.json against the files (episodes.jsonl lengths; parquet rows without it).
    num_frames = sum(e.get("length", 0) for e in episodes) if episodes is not None else parquet_frames
    actual = {"total_episodes": num_episodes, "total_frames": num_frames,
              "total_tasks": len(tasks) if tasks is not None else None,
              "total_videos": num_episodes * sum(f["dtype"] == "video" for f in info["features"].values()),
              "total_chunks": -(-num_episodes // info.get("chunks_size", CHUNKS_SIZE))}
    for key, value in actual.items():
        if value is not None and info.get(key) != value:
            problems.append(f"info.json {key}={info.get(key)} but the files hold {value}")
    listed = {root / _episode_path(info, "data_path", i) for i in range(num_episodes)}
    if stray := [p for p in sorted((root / "data").rglob("*.parquet")) if p not in listed]:
        problems.append(f"{len(stray)} parquet file(s) belong to no listed episode, e.g. {stray[0].relative_to(root)}")
    stats = loaded.get("episodes_stats.jsonl")
    if stats is not None and len(stats) != num_episodes:
        problems.append(f"episodes_stats.jsonl has {len(stats)} lines for {num_episodes} episodes")
    return problems


def assert_valid(root, decode_videos: bool = True) -> None:
    """Raise DatasetError listing every problem `validate_dataset` finds."""
    if problems := validate_dataset(root, decode_videos):
        raise DatasetError(root, problems)
