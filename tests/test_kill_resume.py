"""Kill -9, then re-run: every training loop of the project resumes from its last checkpoint and ends
where an uninterrupted run ends (issue 21).

Each case trains a tiny model through the project's own entry point (world model `fit` and
`variants.finetune`, `fit_idm`, `fit_lam`, `fit_policy` for both families and the latent path, the
bench's `judges.fit` for the state estimator and the IF classifier) in a child process. The child
blocks inside its sampler a step or two after a checkpoint (RUNS: which step), with the steps since
that checkpoint done only in memory; the parent then kills it with a real SIGKILL (os.kill of its
pid) and checks that it died of that signal. The same job is run again and must report resumed_from = the
checkpoint's step (not a retrain from scratch); its weights (every state_dict tensor, buffers
included), its final checkpoint (optimizer moments, torch RNG state, step) and its logged history
(one row a step) must equal, bit for bit (torch.equal / ==), those of an uninterrupted run of the
same job in another folder. The last test (xfail) shows the logged history does not survive when
log_every does not divide ckpt_every. Every child runs on one thread, so float sums are summed in the same order in
every run: nothing here needs a tolerance.

Children are forked from two long-lived "zygote" interpreters (started with `sys.executable -c`)
that have imported torch, diffusers and dreamgen once: a fresh interpreter per run would spend
~3-7 s per run importing, about 100 s for this module's 33 runs. A forked child has done no training before
the fork, so the only state a re-run shares with the killed run is the checkpoint folder. The two
zygotes run under different PYTHONHASHSEEDs and the re-run always comes from the other one than
the killed run, so set/dict-order differences between processes (which once broke resuming of
the world model: see test_world_model's model-card test) would show here too.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_bench import _FakeText  # a fixed random vector per instruction, standing in for MiniLM
from test_world_model import SPEC, TINY, square_episode, tiny_text_encoder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATE_FILE = "train_state.pt"  # dreamgen.training.STATE_FILE (not imported: the parent stays light)

STEPS, CKPT_EVERY, BLOCK_AT = 8, 3, 5  # checkpoints at 3 and 6 (and 8); killed while drawing step 5
HOLD_S = 120  # a blocked child gives up after this long, so an orphan never lingers
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the children are forked (POSIX only)")

# ============================================================================ the children's side
# (runs in the forked children; imported by the zygotes as the module `test_kill_resume`)


def preload() -> None:
    """What the zygotes import once, before any fork (imports only: no thread pool is started)."""
    import transformers  # noqa: F401
    from accelerate import Accelerator  # noqa: F401

    import dreamgen.actions.pipeline  # noqa: F401
    import dreamgen.bench.judges  # noqa: F401
    import dreamgen.policy.pipeline  # noqa: F401
    import dreamgen.training  # noqa: F401
    import dreamgen.world_model  # noqa: F401
    import dreamgen.world_model.variants  # noqa: F401


class Gate:
    """Wraps the sampler factories a loop calls; the sampler labelled `label` blocks at `step`
    (writing `marker` first) until the parent kills the process."""

    def __init__(self, block, marker):
        self.block, self.marker = (tuple(block) if block else None), marker

    def wrap(self, module, name: str, label: str = "main") -> None:
        """Replace the factory module.name (e.g. idm.batch_sampler) by its gated version."""
        setattr(module, name, self.factory(getattr(module, name), label))

    def factory(self, factory, label: str = "main"):
        def make(*args, **kw):
            sample = factory(*args, **kw)

            def gated(rng, step):
                if self.block == (label, step):
                    Path(self.marker).write_text(f"{label} {step}")
                    time.sleep(HOLD_S)
                    os._exit(3)  # never killed: the parent is gone; end without a result
                return sample(rng, step)
            return gated
        return make


def _cfg(**kw):
    from dreamgen.training import TrainConfig

    return TrainConfig(**dict(dict(steps=STEPS, lr=3e-3, seed=0, ckpt_every=CKPT_EVERY, log_every=1), **kw))


def _result(model, res, **extra) -> dict:
    return dict(state={k: v.detach().clone() for k, v in model.state_dict().items()}, resumed_from=res.resumed_from,
                steps_done=res.steps_done, history=res.history, **extra)


# ---------------------------------------------------------------- world model (the mini denoiser)
def _wm_parts():
    """The tiny clip spec, denoiser and bank of two moving squares of tests/test_world_model.py."""
    from dreamgen.world_model import ClipBank

    eps = [square_episode(d) for d in ("right", "down")] * 2
    return SPEC, TINY, ClipBank(SPEC, eps, ["move right", "move down"] * 2, [{} for _ in eps])


def case_wm_pretrain(folder: Path, gate: Gate) -> dict:
    """Pretraining as notebook 03 runs it: cosine schedule, chunks of sample_every with snapshots."""
    from dreamgen.world_model import build_pipeline, fit

    gate.wrap(importlib.import_module("dreamgen.world_model.fit"), "make_sampler")
    spec, tiny, bank = _wm_parts()
    torch.manual_seed(0)
    pipe = build_pipeline(tiny, spec, text=tiny_text_encoder())
    image = bank.clip(0)[0]

    def snapshot(step):
        return pipe(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames

    res, snaps = fit(pipe, bank, _cfg(lr=1e-3, schedule="cosine", warmup=2), folder / "ckpt", batch_size=2,
                     sample_every=4, snapshot=snapshot)
    return _result(pipe.transformer, res, snapshots=snaps)


def case_wm_finetune(folder: Path, gate: Gate) -> dict:
    """A LoRA fine-tune of a saved base, as notebook 04 runs it (checkpoint folder named by a hash)."""
    from dreamgen.world_model import build_pipeline, variants

    gate.wrap(importlib.import_module("dreamgen.world_model.fit"), "make_sampler")
    spec, tiny, bank = _wm_parts()
    base = folder / "base"
    if not (base / "model_index.json").is_file():  # the killed run saved it; the re-run reuses it
        torch.manual_seed(0)
        build_pipeline(tiny, spec, text=tiny_text_encoder()).save_pretrained(base)
    pipe, res, _, _ = variants.finetune(base, "lora", bank, _cfg(lr=1e-2), folder / "ckpt", batch_size=2,
                                        p_drop_text=0.1, rank=2)
    return _result(pipe.transformer, res)


# ---------------------------------------------------------------- IDM and latent action model
SIZE_A, K = 32, 4
ACT, STATE = ("vx", "vy", "wz", "grip"), ("x", "y", "yaw", "opening")


def _episodes(n=3, t=12, size=SIZE_A, a_dim=4, seed=0):
    from dreamgen.episode import Episode

    rng = np.random.default_rng(seed)
    return [Episode(frames=rng.integers(0, 255, (t, size, size, 3), dtype=np.uint8), task="push the block",
                    states=rng.uniform(-1, 1, (t, 4)).astype(np.float32),
                    actions=rng.uniform(-1, 1, (t, a_dim)).astype(np.float32),
                    meta=dict(embodiment="robot", behaviour="push")) for _ in range(n)]


def case_idm(folder: Path, gate: Gate) -> dict:
    from dreamgen.actions import idm
    from dreamgen.actions.pipeline import fit_idm

    gate.wrap(idm, "batch_sampler")
    cfg = idm.IDMConfig(embodiment="robot", image_size=SIZE_A, frame_stride=K, control_fps=10, width=16,
                        flow_steps=2, action_names=ACT, state_names=STATE)
    model, res = fit_idm(_episodes(), cfg, _cfg(), batch_size=4, ckpt_dir=folder / "ckpt")
    return _result(model, res)


def case_lam(folder: Path, gate: Gate, log_every: int = 1) -> dict:
    """8 codes for batches of 4, restart_every=2: dead codes are re-seeded from the torch RNG at every
    even call, before and after the checkpoint at 3; the phase of that count (buffer `calls`) must
    cross the kill."""
    from dreamgen.actions import lam
    from dreamgen.actions.pipeline import fit_lam

    gate.wrap(lam, "pair_sampler")
    cfg = lam.LAMConfig(image_size=SIZE_A, frame_stride=K, control_fps=10, codebook_size=8, code_dim=4, width=8,
                        restart_every=2)
    pairs = lam.make_pairs([e.frames for e in _episodes()], K)
    model, res = fit_lam(pairs, cfg, _cfg(log_every=log_every), batch_size=4, ckpt_dir=folder / "ckpt")
    return _result(model, res)


def case_lam_stage_logging(folder: Path, gate: Gate) -> dict:
    """The LAM as stage 07 logs it: log_every (steps // 30) not dividing ckpt_every."""
    return case_lam(folder, gate, log_every=2)


# ---------------------------------------------------------------- policies
SIZE_P, CHUNK = 16, 8


def _windows(n, seed, codes=False):
    from dreamgen.policy.windows import Windows

    rng = np.random.default_rng(seed)
    return Windows(images=rng.integers(0, 255, (n, SIZE_P, SIZE_P, 3), dtype=np.uint8),
                   text_index=rng.integers(0, 2, n), texts=["push the block", "open the drawer"],
                   states=rng.uniform(-1, 1, (n, 4)).astype(np.float32), state_mask=np.ones(n, np.float32),
                   actions=rng.uniform(-1, 1, (n, CHUNK, 4)).astype(np.float32),
                   action_mask=np.ones((n, CHUNK), np.float32),
                   codes=rng.integers(-1, 4, (n, CHUNK // K)) if codes else None)


def _policy(folder: Path, gate: Gate, family: str, latent: bool) -> dict:
    """fit_policy on synthetic windows: co-training at ratio 0.5, or the latent path (latent-action
    pretraining, then real actions). Text embeddings are random (MiniLM is no part of the loop)."""
    from dreamgen.policy import windows as W
    from dreamgen.policy.config import PolicyConfig
    from dreamgen.policy.pipeline import ArmData, fit_policy

    gate.wrap(W, "mix_sampler", "main")
    gate.wrap(W, "latent_sampler", "latent")
    emb = np.random.default_rng(7).standard_normal((2, 384)).astype(np.float32)
    real, neural = _windows(20, 1), _windows(12, 2, codes=latent)
    arm = ArmData(real, neural, emb, emb, 0.0 if latent else 0.5, [0], [0], latent=latent)
    cfg = PolicyConfig(family=family, embodiment="robot", action_names=ACT, state_names=STATE, image_size=SIZE_P,
                       chunk=CHUNK, width=16, layers=1, inference_steps=4,
                       **(dict(latent_codes=4, latent_rows=CHUNK // K) if latent else {}))
    model, res, pre = fit_policy(cfg, arm, _cfg(), batch_size=4, ckpt_dir=folder / "ckpt",
                                 latent_steps=STEPS if latent else 0)
    extra = dict(pre_resumed_from=pre.resumed_from, pre_history=pre.history) if pre is not None else {}
    return _result(model, res, **extra)


def case_policy_dp(folder, gate):
    return _policy(folder, gate, "dp", latent=False)


def case_policy_gr00t(folder, gate):
    return _policy(folder, gate, "gr00t", latent=False)


def case_policy_gr00t_lam(folder, gate):
    return _policy(folder, gate, "gr00t", latent=True)


# ---------------------------------------------------------------- bench judges
def case_estimator(folder: Path, gate: Gate) -> dict:
    from dreamgen.bench import judges, nets, state

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8)
    states = rng.uniform(0, 1, (24, state.DIM)).astype(np.float32)
    masks = (rng.random((24, state.DIM)) < 0.8).astype(np.float32)
    torch.manual_seed(0)
    est = nets.StateEstimator(nets.EstimatorConfig(32, 8, 32))
    sample = gate.factory(judges.estimator_sampler)(frames, states, masks, 8)
    res = judges.fit(est, sample, _cfg(), folder / "ckpt", "state estimator")
    return _result(est, res)


def case_classifier(folder: Path, gate: Gate) -> dict:
    from dreamgen.bench import judges, nets, state
    from dreamgen.bench.simulate import LabelledEpisode, SimJob

    rng = np.random.default_rng(0)
    tasks = [("pick_place", "put the red cube in the blue bowl"), ("push", "push the green block to the left"),
             ("press_button", "press the cyan button")]
    eps = []
    for i, (behaviour, task) in enumerate(tasks * 2):
        t = 14
        eps.append(LabelledEpisode(frames=np.zeros((t, 8, 8, 3), np.uint8),
                                   states=rng.uniform(0, 1, (t, state.DIM)).astype(np.float32),
                                   masks=np.ones((t, state.DIM), np.float32), success=np.arange(t) >= 8 + i % 3,
                                   task=task, job=SimJob(behaviour, 0, i)))
    torch.manual_seed(0)
    clf = nets.StateClassifier(nets.ClassifierConfig(hidden=16, text_dim=16))
    sample = gate.factory(judges.classifier_sampler)(eps, [e.states for e in eps], _FakeText(), 8, num_frames=4,
                                                     stride=2)
    res = judges.fit(clf, sample, _cfg(), folder / "ckpt", "clip classifier")
    return _result(clf, res)


CASES = {name[len("case_"):]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


def child(job: dict) -> None:
    """One run of a case (in a forked child): train, then save what it ended with to job['out']."""
    torch.set_num_threads(1)
    out = CASES[job["case"]](Path(job["folder"]), Gate(job.get("block"), job.get("marker")))
    torch.save(out, job["out"] + ".tmp")
    os.replace(job["out"] + ".tmp", job["out"])


ZYGOTE = r"""
import json, os, sys, traceback
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
import test_kill_resume as T
T.preload()
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in iter(sys.stdin.readline, ""):
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            T.child(job)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""

# ============================================================================ the parent's side


class Zygote:
    """A `python -c ZYGOTE` process that forks one child per job and reports its pid, then its exit code."""

    def __init__(self, hashseed: int, log: Path):
        env = dict(os.environ, PYTHONHASHSEED=str(hashseed), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(HERE)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT)
        self.buf = b""
        self.child_log: Path | None = None
        self.running: int | None = None  # the pid of the child whose exit code is still to come

    def message(self, timeout: float) -> dict | None:
        """The next message, or None if none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"the zygote died:\n{self.log.read_text()[-3000:]}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def start(self, job: dict) -> int:
        self.child_log = Path(job["log"])
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        msg = self.message(60)
        assert msg and "pid" in msg, msg
        self.running = msg["pid"]
        return msg["pid"]

    def wait(self, timeout: float = 120) -> int:
        msg = self.message(timeout)
        assert msg is not None, f"the child ran past {timeout} s; its log:\n{self.tail()}"
        self.running = None
        return msg["rc"]

    def reset(self) -> None:
        """After a failed check: end our child still running (not yet reaped, so the pid is still it)."""
        if self.running is not None:
            try:
                os.kill(self.running, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(30)

    def tail(self) -> str:
        return self.child_log.read_text()[-4000:] if self.child_log and self.child_log.is_file() else ""

    def close(self) -> None:
        """Stdin closed, the zygote leaves its loop and exits (within a few seconds, or is killed)."""
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def zygotes(tmp_path_factory):
    logs = tmp_path_factory.mktemp("zygotes")
    pair = [Zygote(seed, logs / f"zygote{seed}.log") for seed in (1, 2)]
    try:
        for z in pair:
            msg = z.message(180)
            assert msg and "ready" in msg, f"zygote not ready:\n{z.log.read_text()[-3000:]}"
        yield pair
    finally:
        for z in pair:
            z.proc.stdin.close()
        for z in pair:
            z.close()


def job(case: str, folder: Path, name: str, block=None) -> dict:
    return dict(case=case, folder=str(folder / name), out=str(folder / f"{name}.pt"), log=str(folder / f"{name}.log"),
                block=block, marker=str(folder / f"{name}.blocked"))


def kill_and_resume(zygotes, case: str, tmp_path: Path, block=("main", BLOCK_AT)) -> tuple[dict, dict, int]:
    """Run `case` killed by SIGKILL at its block point, then again; and once uninterrupted.
    Returns (uninterrupted result, re-run result, step of the checkpoint the kill left)."""
    try:
        return _kill_and_resume(*zygotes, case, tmp_path, block)
    finally:
        for z in zygotes:
            z.reset()


def _kill_and_resume(first: Zygote, second: Zygote, case: str, tmp_path: Path, block) -> tuple[dict, dict, int]:
    killed = job(case, tmp_path, "resumed", block)
    pid = first.start(killed)
    whole = job(case, tmp_path, "whole")
    second.start(whole)  # the uninterrupted run, meanwhile
    marker, deadline = Path(killed["marker"]), time.monotonic() + 120
    while not marker.exists():
        msg = first.message(0.05)
        assert msg is None, f"the child to kill ended by itself ({msg}):\n{first.tail()}"
        assert time.monotonic() < deadline, f"the child never reached step {block}:\n{first.tail()}"
    ckpts = sorted(Path(killed["folder"]).rglob(STATE_FILE), key=lambda p: p.stat().st_mtime)
    assert ckpts, "blocked before any checkpoint"
    ckpt_step = torch.load(ckpts[-1], map_location="cpu", weights_only=False)["step"]
    assert 0 < ckpt_step < block[1] < STEPS  # the kill lands mid-run, with steps done since the checkpoint
    os.kill(pid, signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL, "the child did not die of SIGKILL"
    assert not Path(killed["out"]).exists()
    assert second.wait() == 0, f"the uninterrupted run failed:\n{second.tail()}"
    again = dict(killed, block=None, log=str(tmp_path / "rerun.log"))
    second.start(again)  # the re-run: another process, under another hash seed than the killed one
    assert second.wait() == 0, f"the re-run failed:\n{second.tail()}"
    load = lambda p: torch.load(p, map_location="cpu", weights_only=False)  # noqa: E731
    return load(whole["out"]), load(killed["out"]), ckpt_step


def differing(a: dict, b: dict) -> list[str]:
    """Names of the state_dict tensors that are not bit-identical (or missing on one side)."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


def tensors(obj, prefix=""):
    """The tensors inside a nested dict/list (an optimizer state), by path."""
    if torch.is_tensor(obj):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}/{i}")


def final_checkpoints_match(tmp_path: Path) -> None:
    """The final train_state.pt files of both runs: same folders, step, optimizer state and torch RNG."""
    runs = [{p.relative_to(tmp_path / name): p for p in (tmp_path / name).rglob(STATE_FILE)} for name in ("whole", "resumed")]
    assert runs[0].keys() == runs[1].keys() and runs[0], (runs[0].keys(), runs[1].keys())
    for rel in runs[0]:
        a, b = (torch.load(r[rel], map_location="cpu", weights_only=False) for r in runs)
        assert a["step"] == b["step"] == STEPS and a["config"] == b["config"]
        assert torch.equal(a["torch_rng"], b["torch_rng"]), rel
        ta, tb = dict(tensors(a["optimizer"])), dict(tensors(b["optimizer"]))
        assert ta.keys() == tb.keys() and [k for k in ta if not torch.equal(ta[k], tb[k])] == [], rel
        assert a["history"] == b["history"], rel


# (case, where it is blocked and killed, the checkpoint step the kill must leave)
RUNS = [
    # fit runs in chunks of sample_every = 4 steps, each a train() call that reloads the checkpoint: killed
    # at step 7, the re-run resumes from the mid-chunk checkpoint at 6 (at a chunk's end the uninterrupted
    # run reloads too and would not tell a lost optimizer state apart), after the snapshot of step 4
    ("wm_pretrain", ("main", 7), 6),
    ("wm_finetune", ("main", BLOCK_AT), 3),
    ("idm", ("main", BLOCK_AT), 3),
    ("lam", ("main", BLOCK_AT), 3),
    ("policy_dp", ("main", BLOCK_AT), 3),
    ("policy_gr00t", ("main", BLOCK_AT), 3),
    ("policy_gr00t_lam", ("latent", BLOCK_AT), 3),  # killed in the latent-action pretraining
    ("policy_gr00t_lam", ("main", BLOCK_AT), 3),    # killed in the fine-tune on real actions after it
    ("estimator", ("main", BLOCK_AT), 3),
    ("classifier", ("main", BLOCK_AT), 3),
]


@pytest.mark.parametrize("case, block, ckpt_step", RUNS, ids=[f"{c}@{b[0]}" for c, b, _ in RUNS])
def test_a_killed_run_resumes_to_the_uninterrupted_result(zygotes, tmp_path, case, block, ckpt_step):
    whole, resumed, left = kill_and_resume(zygotes, case, tmp_path, block)
    assert left == ckpt_step
    assert whole["resumed_from"] == 0 and whole["steps_done"] == resumed["steps_done"] == STEPS
    if block[0] == "latent":  # the pretraining resumed, then the fine-tune started fresh
        assert resumed["pre_resumed_from"] == ckpt_step and resumed["resumed_from"] == 0
    else:
        assert resumed["resumed_from"] == ckpt_step
        if "pre_resumed_from" in resumed:  # the finished pretraining was loaded, not redone
            assert resumed["pre_resumed_from"] == STEPS
    assert differing(whole["state"], resumed["state"]) == []
    assert whole["history"] == resumed["history"] and len(whole["history"]) == STEPS
    assert whole.get("pre_history") == resumed.get("pre_history")
    if "snapshots" in whole:  # the snapshots drawn before the kill survive it, and equal the uninterrupted ones
        assert sorted(whole["snapshots"]) == sorted(resumed["snapshots"]) == [4, STEPS]
        assert all((whole["snapshots"][s] == resumed["snapshots"][s]).all() for s in whole["snapshots"])
    final_checkpoints_match(tmp_path)


@pytest.mark.xfail(strict=True, reason=(
    "dreamgen.training.train keeps the not-yet-logged losses (`running`) out of the checkpoint: a run resumed "
    "between two log rows logs, for the first row after the checkpoint, the mean of the steps since the "
    "checkpoint only. Measured here (log_every 2, checkpoint at 3): row 4 loss 16.1812 resumed (step 4 "
    "alone) vs 16.2205 uninterrupted (steps 3-4), entropy -0.737 vs -0.947; the weights stay bit-identical. The stages 07_train_lam "
    "(log_every 33, ckpt_every 500) and 10_train_policy (26, 500) log this way."))
def test_logged_history_survives_a_kill_when_log_every_does_not_divide_ckpt_every(zygotes, tmp_path):
    whole, resumed, left = kill_and_resume(zygotes, "lam_stage_logging", tmp_path)
    assert left == 3 and resumed["resumed_from"] == 3
    assert differing(whole["state"], resumed["state"]) == []
    assert whole["history"] == resumed["history"]
