"""The features of benchmarks/probe_policy_ceiling.py: the true-state policy must see what the instruction names."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamgen.bench import state as ST


@pytest.fixture(scope="module")
def probe():
    path = Path(__file__).parents[1] / "benchmarks" / "probe_policy_ceiling.py"
    spec = importlib.util.spec_from_file_location("probe_policy_ceiling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_roles_mark_the_named_object_then_the_named_zone(probe):
    r = probe.roles("put the red cube in the blue bowl")
    red, blue = ST.COLOUR_NAMES.index("red"), ST.COLOUR_NAMES.index("blue")
    assert r[red].tolist() == [1, 0, 0] and r[blue].tolist() == [0, 1, 0]
    others = [i for i in range(len(ST.COLOUR_NAMES)) if i not in (red, blue)]
    assert (r[others] == [0, 0, 1]).all()
    assert (probe.roles("sort the blocks by colour")[:, 2] == 1).all()  # nothing named: every slot is "other"


def test_features_give_the_named_object_relative_to_the_gripper(probe):
    from dreamgen.world import BEHAVIOURS, TabletopEnv

    env = TabletopEnv(image_size=64, render_obs=False)
    obs, info = env.reset(seed=3, options=dict(embodiment="robot", behaviour="pick_place", environment=0))
    s, m = ST.world_state(env)
    slots, glob = probe.features(s, m, obs["state"], info["instruction"], BEHAVIOURS.index("pick_place"))
    colour = ST.instruction_colours(info["instruction"])[0]
    k = ST.COLOUR_NAMES.index(colour)
    obj = next(o for o in env.world.objects if o.colour == colour)
    pc = len(ST.PER_COLOUR)
    rel = slots[k, 2 * pc:2 * pc + 2]                       # (obj - ee) in state units x 10
    np.testing.assert_allclose(rel, (obj.pos - env.world.ee_pos) / ST.SCALE * 10, atol=1e-5)
    assert slots[k, -3:].tolist() == [1, 0, 0]
    assert glob.shape == (2 * (ST.DIM - len(ST.COLOUR_NAMES) * pc) + 4 + 10,)


def test_the_policy_ignores_the_order_of_the_slots(probe):
    """Role pooling: which colour an unnamed (or named) slot has must not change the action."""
    torch.manual_seed(0)
    slots, glob = torch.randn(2, 8, 2 * len(ST.PER_COLOUR) + 7), torch.randn(2, 30)
    slots[..., -3:] = torch.tensor([0.0, 0.0, 1.0])
    slots[:, 1, -3:], slots[:, 5, -3:] = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    net = probe.RolePooledMLP(slots.shape[-1], glob.shape[-1], 16, 32)
    perm = torch.randperm(8)
    torch.testing.assert_close(net(slots, glob), net(slots[:, perm], glob))
    swapped = slots.clone()
    swapped[:, 1, -3:], swapped[:, 5, -3:] = slots[:, 5, -3:], slots[:, 1, -3:]  # object and zone roles exchanged
    assert not torch.allclose(net(slots, glob), net(swapped, glob))
