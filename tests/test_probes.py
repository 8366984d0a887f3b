"""The measures of benchmarks/probe_memorise_robot.py: they must be able to tell a good dream from a bad one."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamgen.world_model import ClipSpec, DenoiserConfig, build_pipeline

from test_world_model import square_episode, text  # noqa: F401  (the tiny text encoder fixture)


@pytest.fixture(scope="module")
def probe():
    folder = Path(__file__).parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))  # the probe imports its neighbour gpu_world_model_scale, as a script would
    path = folder / "probe_memorise_robot.py"
    spec = importlib.util.spec_from_file_location("probe_memorise_robot", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def clips():
    """Two real clips of a square moving right / down one pixel per frame: (2, 8, 16, 16, 3)."""
    return np.stack([square_episode("right", 8), square_episode("down", 8)])


def test_frames_in_place_and_moving_mae_separate_real_copied_and_hurried_dreams(probe):
    real = clips()
    copy = np.repeat(real[:, :1], 8, axis=1)
    hurried = real[:, [0, 2, 4, 6, 7, 7, 7, 7]]  # runs ahead, then holds the end state
    assert probe.frames_in_place(real, real) == 1.0
    assert probe.frames_in_place(copy, real) == 0.0
    assert probe.frames_in_place(hurried, real) == pytest.approx(1 / 7)  # only its last frame is in place
    assert probe.moving_mae(real, real) == 0.0
    assert probe.moving_mae(copy, real) > probe.moving_mae(hurried, real) > 0


def test_dreams_from_the_unnoised_truth_are_the_truth(probe, text):  # noqa: F811
    torch.manual_seed(0)
    pipe = build_pipeline(DenoiserConfig(patch=4, width=16, heads=2, layers=1, text_dim=32, freq_dim=16),
                          ClipSpec(num_frames=8, frame_stride=1, image_size=16), text=text)
    real = clips()
    out = probe.from_noised_truth(pipe, real, ["move right", "move down"], 0.0, 4, 3.0, seed=0)
    np.testing.assert_array_equal(out, real)
    noisy = probe.from_noised_truth(pipe, real, ["move right", "move down"], 1.0, 4, 3.0, seed=0)
    assert noisy.shape == real.shape and not np.array_equal(noisy, real)  # an untrained model from pure noise
    rec, est = probe.recovery(pipe, real, ["move right", "move down"], [0.5, 1.0], seed=0)
    assert set(rec) == {0.0, 0.5, 1.0} and est.shape == (2, *real.shape) and rec[0.0] > 0
