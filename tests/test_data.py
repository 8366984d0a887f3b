"""The LeRobot v2.1 dataset layer: lossless round trips, layout details, and the validator."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dreamgen.data import (DATA_PATH, Dataset, DatasetError, assert_valid, measure_video_round_trip, vector_column,
                           read_video, validate_dataset, write_dataset, write_video)
from dreamgen.episode import Episode

FPS = 10
VIDEO = "videos/chunk-000/observation.images.top/episode_{:06d}.mp4"


def make_episode(rng, n=8, size=(16, 16), task="pick the cube", state_dim=4, action_dim=3, meta=None):
    """Random frames (worst case for a codec) with states/actions unless dims are None."""
    vec = lambda d: None if d is None else rng.normal(size=(n, d)).astype(np.float32)
    return Episode(frames=rng.integers(0, 256, (n, *size, 3), dtype=np.uint8), task=task,
                   states=vec(state_dim), actions=vec(action_dim), meta=meta or {})


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def episodes(rng):
    tasks = ["pick the cube", "open the drawer", "pick the cube"]
    return [make_episode(rng, n=5 + 2 * i, task=t, meta={"seed": np.int64(i), "success": i != 1, "embodiment": "arm",
                               "labels": {"score": 0.5, "tags": ["a", "b"]}})
            for i, t in enumerate(tasks)]


@pytest.fixture
def dataset(tmp_path, episodes):
    root = tmp_path / "ds"
    write_dataset(root, episodes, fps=FPS, robot_type="sim_arm", state_names=list("abcd"))
    return root


def test_video_round_trip_is_bit_exact(tmp_path, rng):
    frames = rng.integers(0, 256, (6, 15, 17, 3), dtype=np.uint8)  # odd sizes: 4:4:4 needs no padding
    write_video(tmp_path / "v.mp4", frames, FPS)
    np.testing.assert_array_equal(read_video(tmp_path / "v.mp4"), frames)
    rt = measure_video_round_trip(frames, FPS)
    assert rt.max_abs_error == 0 and rt.mean_abs_error == 0 and rt.bytes_per_frame > 0


def test_round_trip(tmp_path, episodes):
    info = write_dataset(tmp_path / "ds", iter(episodes), fps=FPS, robot_type="sim_arm",
                         extra_info={"world_model": "none", "version": 1})
    assert (info.num_episodes, info.num_frames) == (3, 5 + 7 + 9)
    ds = Dataset(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.num_frames == 21 and ds.fps == FPS
    assert ds.info["dreamgen"] == {"world_model": "none", "version": 1}
    for want, got in zip(episodes, ds.iter_episodes(), strict=True):
        np.testing.assert_array_equal(got.frames, want.frames)
        np.testing.assert_array_equal(got.states, want.states)
        np.testing.assert_array_equal(got.actions, want.actions)
        assert got.states.dtype == np.float32 and got.task == want.task and got.meta == want.meta
    assert ds.episodes_meta == [e.meta for e in episodes]
    assert validate_dataset(tmp_path / "ds") == []


def test_layout_matches_lerobot_v21(dataset):
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["robot_type"] == "sim_arm"
    assert {k: info[k] for k in ("total_episodes", "total_frames", "total_tasks", "total_videos",
                                 "total_chunks", "chunks_size")} == dict(
        total_episodes=3, total_frames=21, total_tasks=2, total_videos=3, total_chunks=1, chunks_size=1000)
    assert info["splits"] == {"train": "0:3"} and info["data_path"] == DATA_PATH
    f = info["features"]
    assert f["observation.state"] == {"dtype": "float32", "shape": [4], "names": ["a", "b", "c", "d"]}
    assert f["action"]["shape"] == [3] and len(f["action"]["names"]) == 3
    video = f["observation.images.top"]
    assert video["dtype"] == "video" and video["shape"] == [16, 16, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.fps"] == FPS and video["info"]["video.is_depth_map"] is False
    assert video["info"]["has_audio"] is False and video["info"]["video.codec"] == "h264"
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert f[k]["shape"] == [1]
    assert (dataset / VIDEO.format(2)).is_file()

    schema = pq.read_schema(dataset / DATA_PATH.format(episode_chunk=0, episode_index=1))
    assert schema.field("observation.state").type == pa.list_(pa.float32())
    assert schema.field("action").type == pa.list_(pa.float32())
    assert schema.field("timestamp").type == pa.float32()
    assert all(schema.field(k).type == pa.int64() for k in ("frame_index", "episode_index", "index", "task_index"))
    episodes = [json.loads(l) for l in (dataset / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes[1] == {"episode_index": 1, "tasks": ["open the drawer"], "length": 7}


def test_tasks_dedup_and_global_index(dataset):
    ds = Dataset(dataset)
    assert ds.tasks == ["pick the cube", "open the drawer"]
    table = ds.frames_table()
    assert len(table) == 21
    np.testing.assert_array_equal(table["index"], np.arange(21))
    per_episode = table.groupby("episode_index")["task_index"].unique().map(list).tolist()
    assert per_episode == [[0], [1], [0]]
    ep1 = table[table.episode_index == 1]
    np.testing.assert_array_equal(ep1.frame_index, np.arange(7))
    np.testing.assert_allclose(ep1.timestamp, np.arange(7) / FPS, atol=1e-6)


def test_web_dataset_has_no_state_or_action(tmp_path, rng):
    eps = [make_episode(rng, n=6, size=(32, 32), state_dim=None, action_dim=None, task=f"video {i}")
           for i in range(2)]
    write_dataset(tmp_path / "web", eps, fps=FPS, robot_type="web", camera="front")
    ds = Dataset(tmp_path / "web")
    assert "observation.state" not in ds.info["features"] and "action" not in ds.info["features"]
    assert ds.video_keys == ["observation.images.front"]
    assert not {"observation.state", "action"} & set(ds.frames_table().columns)
    ep = ds.episode(1)
    assert ep.states is None and ep.actions is None and ep.task == "video 1"
    np.testing.assert_array_equal(ep.frames, eps[1].frames)
    assert validate_dataset(tmp_path / "web") == []


def test_episode_stats(tmp_path):
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    frames[..., 0] = 255                   # red channel: constant 1.0
    frames[:2, ..., 1] = 255               # green: half the frames 1.0 -> mean 0.5, std 0.5
    states = np.arange(12, dtype=np.float32).reshape(4, 3)
    eps = [Episode(frames, "t", states=states, actions=states[:, :2].copy()),
           Episode(frames[:2], "t", states=states[:2] + 100, actions=states[:2, :2].copy())]
    write_dataset(tmp_path / "ds", eps, fps=FPS, robot_type="x")
    stats = [json.loads(l)["stats"] for l in (tmp_path / "ds/meta/episodes_stats.jsonl").read_text().splitlines()]
    s = stats[0]["observation.state"]
    assert s["min"] == [0, 1, 2] and s["max"] == [9, 10, 11] and s["mean"] == [4.5, 5.5, 6.5]
    np.testing.assert_allclose(s["std"], states.std(0))
    assert s["count"] == [4]
    img = stats[0]["observation.images.top"]
    assert np.shape(img["mean"]) == (3, 1, 1)
    np.testing.assert_allclose(np.ravel(img["mean"]), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(np.ravel(img["std"]), [0.0, 0.5, 0.0])
    assert np.ravel(img["min"]).tolist() == [1.0, 0.0, 0.0] and np.ravel(img["max"]).tolist() == [1.0, 1.0, 0.0]
    assert stats[0]["frame_index"] == {"min": [0], "max": [3], "mean": [1.5], "std": [np.std(range(4))], "count": [4]}

    pooled = Dataset(tmp_path / "ds").stats["observation.state"]   # must equal stats of all rows at once
    rows = np.concatenate([states, states[:2] + 100])
    np.testing.assert_allclose(pooled["mean"], rows.mean(0))
    np.testing.assert_allclose(pooled["std"], rows.std(0))
    np.testing.assert_array_equal(pooled["min"], rows.min(0))
    assert pooled["count"].tolist() == [6]


def test_write_refuses_to_overwrite(tmp_path, episodes):
    root = tmp_path / "ds"
    write_dataset(root, episodes[:1], fps=FPS, robot_type="x")
    with pytest.raises(FileExistsError):
        write_dataset(root, episodes, fps=FPS, robot_type="x")
    assert Dataset(root).num_episodes == 1
    write_dataset(root, episodes, fps=FPS, robot_type="x", overwrite=True)
    assert Dataset(root).num_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]   # no temp dir left behind


def test_crash_while_writing_leaves_nothing(tmp_path, rng):
    def episodes():
        yield make_episode(rng)
        raise RuntimeError("simulator died")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "ds", episodes(), fps=FPS, robot_type="x")
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_episodes_are_rejected(tmp_path, rng):
    with pytest.raises(ValueError, match="episode 1: frames"):
        write_dataset(tmp_path / "a", [make_episode(rng), make_episode(rng, size=(32, 32))], FPS, "x")
    with pytest.raises(ValueError, match="episode 1: states"):
        write_dataset(tmp_path / "b", [make_episode(rng), make_episode(rng, state_dim=None)], FPS, "x")
    assert list(tmp_path.iterdir()) == []


# Each malformation, and words its report must contain.
def _drop_parquet(root):
    (root / DATA_PATH.format(episode_chunk=0, episode_index=1)).unlink()


def _truncate_video(root):
    path = root / VIDEO.format(2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_info(**changes):
    def edit(root):
        info = json.loads((root / "meta/info.json").read_text())
        for key, value in changes.items():
            target = info
            *parents, leaf = key.split("/")
            for p in parents:
                target = target[p]
            target[leaf] = value
        (root / "meta/info.json").write_text(json.dumps(info))
    return edit


def _edit_parquet(column, edit_values):
    def edit(root):
        path = root / DATA_PATH.format(episode_chunk=0, episode_index=0)
        table = pq.read_table(path)
        values = edit_values(table.column(column).to_pylist())
        field = table.schema.field(column)
        pq.write_table(table.set_column(table.column_names.index(column), field,
                                        pa.array(values, field.type)), path)
    return edit


def _short_video(root):
    write_video(root / VIDEO.format(0), read_video(root / VIDEO.format(0))[:-1], FPS)


@pytest.mark.parametrize("corrupt, words", [
    (_drop_parquet, ["episode 1", "parquet", "missing"]),
    (_truncate_video, ["episode 2", "video", "truncated"]),
    (lambda root: (root / VIDEO.format(0)).unlink(), ["episode 0", "video", "missing"]),
    (_short_video, ["episode 0", "4 frames", "5 rows"]),
    (_edit_info(**{"features/observation.images.top/shape": [32, 32, 3]}), ["16x16", "32x32"]),
    (_edit_parquet("observation.state", lambda v: [v[0][:3]] + v[1:]), ["observation.state", "length 3", "row 0"]),
    (_edit_parquet("index", lambda v: [x + 1 for x in v]), ["episode 0", "index", "contiguous"]),
    (_edit_parquet("task_index", lambda v: [7] * len(v)), ["task_index", "7", "tasks.jsonl"]),
    (_edit_info(total_frames=99), ["total_frames=99", "21"]),
    (_edit_info(total_episodes=5), ["total_episodes=5"]),
    (_edit_info(codebase_version="v2.0"), ["codebase_version", "v2.0"]),
    (lambda root: (root / "meta/tasks.jsonl").unlink(), ["meta/tasks.jsonl", "missing"]),
])
def test_validator_names_each_problem(dataset, corrupt, words):
    corrupt(dataset)
    problems = validate_dataset(dataset)
    assert any(all(w in p for w in words) for p in problems), problems
    with pytest.raises(DatasetError) as err:
        assert_valid(dataset)
    assert err.value.problems == problems and words[0] in str(err.value)
    assert validate_dataset(dataset, decode_videos=False)  # the header-only check sees each too


def test_validator_without_info_json(dataset):
    (dataset / "meta/info.json").unlink()
    assert validate_dataset(dataset) == ["meta/info.json is missing"]
    assert validate_dataset(dataset / "nowhere") == [f"{dataset / 'nowhere'} is not a directory"]


def test_a_shape_one_feature_is_a_plain_column_as_lerobot_stores_it(dataset):
    """LeRobot keeps a feature of shape [1] as a plain float column; ours reads and validates it so."""
    from dreamgen.actions.label import add_vector_column

    ds = Dataset(dataset)
    codes = [np.arange(e["length"], dtype=np.float32)[:, None] for e in ds.episodes]
    add_vector_column(dataset, "action.latent", codes, ["code"])
    table = pq.read_table(Dataset(dataset).data_path(0))
    assert pa.types.is_floating(table.column("action.latent").type)  # not list<float>
    assert validate_dataset(dataset) == []
    assert (vector_column(table, "action.latent") == codes[0]).all()
    assert vector_column(table, "observation.state").shape[1] > 1 and vector_column(table, "nothing") is None
    info = json.loads((dataset / "meta/info.json").read_text())
    info["features"]["action.latent"]["shape"] = [2]
    (dataset / "meta/info.json").write_text(json.dumps(info))
    assert any("action.latent is a plain column" in p and "[2]" in p for p in validate_dataset(dataset))
