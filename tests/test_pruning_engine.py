"""The pruning engine: masks in the forward pass (thread-safe, the shared model never changes), the front
end once, stages before the first pruned layer once, several masks per pass, worker threads, precision."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from _analyses_fixtures import CLASSIFIER_W, expected_logits, tiny_inputs, tiny_model
from _models_fixtures import demo_clips, tiny_ast

from and_engine.analyses.common import AnalysisInputError
from and_engine.analyses.pruning_engine import PruningEngine, auto_workers
from and_engine.models.ast import make_ast_target
from and_engine.models.base import ModelError, edited, pruned
from and_engine.models.yamnet import load_pretrained_yamnet

SELECTIONS = [  # first pruned stage 0, 2, 5, 14 (the classifier), mixed, nothing
    {"block1.conv": [0, 5]}, {"block3.pointwise": [1, 2, 3], "block9.pointwise": [7]},
    {"block6.pointwise": list(range(0, 256, 3))}, {"classifier": [0, 137]},
    {"block14.pointwise": [9], "block2.pointwise": [4]}, {},
]


@pytest.fixture(scope="module")
def yamnet():
    torch.set_num_threads(1)
    return load_pretrained_yamnet()


@pytest.fixture(scope="module")
def waves():
    return demo_clips(per_class=1, seconds=2.0)[0][:5]  # 5 real clips, 3 windows each


def one_by_one(model, waves, selection, batch_size):
    """The reference: one forward pass per selection, ``batch_size`` clips at a time, as before the engine."""
    with pruned(model, selection):
        return np.concatenate([model.logits(waves[i:i + batch_size]) for i in range(0, len(waves), batch_size)])


def test_stages_compose_to_the_module(yamnet, waves):
    x = yamnet.inputs(waves[:2])
    with torch.inference_mode():
        whole = yamnet.module(x)
        assert torch.equal(yamnet.run_stages(x), whole)
        assert torch.equal(yamnet.run_stages(yamnet.run_stages(x, 0, 6), 6), whole)
    assert [yamnet.stage_of(n) for n in ("block1.conv", "block2.pointwise", "block14.pointwise", "classifier")] == \
        [0, 1, 13, 14]


def test_engine_equals_one_pass_per_selection_bit_for_bit(yamnet, waves):
    engine = PruningEngine(yamnet, waves, batch_size=2)
    got = engine.logits(SELECTIONS)
    for sel, logits in zip(SELECTIONS, got, strict=True):
        np.testing.assert_array_equal(logits, one_by_one(yamnet, waves, sel, 2))
    np.testing.assert_array_equal(engine.baseline, one_by_one(yamnet, waves, {}, 2))
    assert got[-1] is engine.baseline  # nothing pruned: no pass at all


def test_worker_threads_give_the_same_logits(yamnet, waves):
    one = PruningEngine(yamnet, waves, batch_size=2, workers=1).logits(SELECTIONS)
    two = PruningEngine(yamnet, waves, batch_size=2, workers=2).logits(SELECTIONS)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert auto_workers("cuda") == 1 and auto_workers("cpu") >= 1


def test_front_end_runs_once_per_chunk(yamnet, waves):
    calls = []
    real = yamnet.preprocess
    yamnet.preprocess = lambda w: calls.append(len(w)) or real(w)
    try:
        engine = PruningEngine(yamnet, waves, batch_size=2)
        engine.logits(SELECTIONS)
        engine.logits(SELECTIONS[:2])
    finally:
        yamnet.preprocess = real
    assert calls == [2, 2, 1]  # the three chunks, once, however many selections


def count_calls(model, layers, fn):
    """{layer: forward calls of its module while ``fn()`` runs}."""
    counts = dict.fromkeys(layers, 0)
    hooks = [model.module.get_submodule(n).register_forward_hook(
        lambda *_a, n=n: counts.__setitem__(n, counts[n] + 1)) for n in counts]
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return counts


def test_stages_before_the_first_pruned_layer_run_once_per_chunk(yamnet, waves):
    engine = PruningEngine(yamnet, waves, batch_size=5, cache_mb=0)  # one chunk, no stored stage inputs
    late = [{"block9.pointwise": [i]} for i in range(4)] + [{"classifier": [1]}]
    counts = count_calls(yamnet, ["block1.conv", "block5.pointwise"], lambda: engine.logits(late))
    assert counts == {"block1.conv": 1, "block5.pointwise": 1}  # not 5 each: the prefix is shared


@pytest.mark.parametrize("make", ["yamnet", "ast"])
def test_stored_stage_inputs_equal_the_full_pass_and_skip_the_blocks_below(make, yamnet, waves):
    """The live views' fast path: after the unpruned pass, zeroing a unit of the first, a middle or the last
    prunable layer gives exactly the logits of a full forward pass, and the blocks below it never run."""
    if make == "ast":
        hf, fe = tiny_ast(n_labels=4, num_hidden_layers=3)
        model, x = make_ast_target(hf, fe, "tiny", "ast"), np.random.default_rng(5).normal(0, 0.1, (5, 8000))
        cases = [("block0.attn.out", []), ("block1.mlp.fc1", ["hf.audio_spectrogram_transformer.layers.0"]),
                 ("classifier", ["hf.audio_spectrogram_transformer.embeddings",
                                 "hf.audio_spectrogram_transformer.layers.2"])]
    else:
        model, x = yamnet, waves
        cases = [("block1.conv", []), ("block7.pointwise", ["block1.conv", "block6.pointwise"]),
                 ("classifier", ["block1.conv", "block14.pointwise"])]
    x = np.asarray(x, dtype=np.float32)
    engine = PruningEngine(model, x, batch_size=2)  # 3 chunks
    assert engine.cached_stages == frozenset(range(1, len(model.stages)))  # every stage fits in 256 MB
    np.testing.assert_array_equal(engine.baseline, one_by_one(model, x, {}, 2))
    for layer, below in cases:
        sel = {layer: [0, 3]}
        got = {}
        counts = count_calls(model, below, lambda s=sel, g=got: g.update(logits=engine.logits([s])[0]))
        np.testing.assert_array_equal(got["logits"], one_by_one(model, x, sel, 2))
        assert counts == dict.fromkeys(below, 0), layer  # started from the stored input of the pruned stage
    nothing = PruningEngine(model, x, batch_size=2, cache_mb=0)
    assert nothing.cached_stages == frozenset()
    counts = count_calls(model, cases[-1][1], lambda: nothing.logits([{"classifier": [0]}]))
    assert counts == dict.fromkeys(cases[-1][1], 3)  # without stored inputs: once per chunk


def test_the_cache_keeps_the_deepest_stages_within_its_budget(yamnet, waves):
    engine = PruningEngine(yamnet, waves, batch_size=2, cache_mb=0.5)
    kept = sorted(engine.cached_stages)
    assert kept and kept[-1] == len(yamnet.stages) - 1 and kept == list(range(kept[0], kept[-1] + 1))
    assert 1 not in kept  # block2's input (32 x 48 x 32 floats a window) does not fit
    sel = {"block3.pointwise": [1]}  # below the kept stages: from the features, still exact
    np.testing.assert_array_equal(engine.logits([sel])[0], one_by_one(yamnet, waves, sel, 2))


def test_threads_are_set_per_call_and_restored(yamnet, waves):
    seen = []
    hook = yamnet.module.classifier.register_forward_hook(lambda *_a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        engine = PruningEngine(yamnet, waves[:2], batch_size=2, threads=1)
        seen.clear()
        engine.logits([{"block2.pointwise": [0]}])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        hook.remove()
        torch.set_num_threads(before)
    assert auto_workers("cpu", threads=1) >= auto_workers("cpu", threads=2)


def test_several_masks_share_a_pass_when_the_clips_are_few(yamnet, waves):
    calls = []
    hook = yamnet.module.classifier.register_forward_hook(lambda _m, i, _o: calls.append(i[0].shape[0]))
    try:
        engine = PruningEngine(yamnet, waves, batch_size=16)  # 5 clips -> 3 masks per pass
        calls.clear()
        got = engine.logits(SELECTIONS[:5])
    finally:
        hook.remove()
    assert engine.per_pass == 3 and len(calls) < 5
    for sel, logits in zip(SELECTIONS[:5], got, strict=True):
        np.testing.assert_allclose(logits, one_by_one(yamnet, waves, sel, 5), rtol=0, atol=1e-4)


def test_bfloat16_precision_is_used(yamnet, waves):
    f32 = PruningEngine(yamnet, waves[:2], batch_size=2)
    bf16 = PruningEngine(yamnet, waves[:2], batch_size=2, precision="bfloat16")
    assert not np.array_equal(f32.baseline, bf16.baseline)
    np.testing.assert_allclose(bf16.baseline, f32.baseline, atol=0.5)
    with pytest.raises(AnalysisInputError, match="precision"):
        PruningEngine(yamnet, waves[:2], precision="float16")


def test_ast_engine_matches_one_pass_per_selection():
    model, fe = tiny_ast()
    target = make_ast_target(model, fe, "tiny", "ast")
    x = np.random.default_rng(3).normal(0, 0.1, (3, 8000)).astype(np.float32)
    sels = [{"block1.mlp.fc1": [5, 9]}, {"block0.attn.out": [1], "block1.mlp.fc2": [0]}]
    got = PruningEngine(target, x, batch_size=2).logits(sels)
    for sel, logits in zip(sels, got, strict=True):
        np.testing.assert_array_equal(logits, one_by_one(target, x, sel, 2))


def test_bad_selection_is_refused_before_any_pass(yamnet, waves):
    engine = PruningEngine(yamnet, waves[:1], batch_size=1)
    with pytest.raises(ModelError, match="neuron ids"):
        engine.logits([{"block1.conv": [0]}, {"block1.conv": [32]}])
    with pytest.raises(ModelError, match="has no layer"):
        engine.logits([{"nope": [0]}])


def test_overlapping_pruning_in_two_threads_never_leaks(yamnet, waves):
    """Issue 12 item 1: live pruning zeroed weights in place on the model every session shares."""
    model, (x, _) = tiny_model(), tiny_inputs()
    weights = {k: v.clone() for k, v in model.module.state_dict().items()}
    inside, other_done = threading.Barrier(2), threading.Event()
    seen = {}

    def pruning_session():
        with pruned(model, {"fc1": [0, 1, 2, 3]}):
            inside.wait(timeout=10)  # the other session runs now, while this one is pruned
            other_done.wait(timeout=10)
            seen["pruned"] = model.logits(x)

    def plain_session():
        inside.wait(timeout=10)
        seen["plain"] = model.logits(x)
        other_done.set()

    threads = [threading.Thread(target=pruning_session), threading.Thread(target=plain_session)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    np.testing.assert_allclose(seen["plain"], expected_logits(x, []), atol=1e-5)  # saw no pruned unit
    np.testing.assert_allclose(seen["pruned"], expected_logits(x, [0, 1, 2, 3]), atol=1e-5)
    for k, v in model.module.state_dict().items():
        assert torch.equal(v, weights[k])  # the shared model is unchanged afterwards
    np.testing.assert_allclose(model.logits(x), expected_logits(x, []), atol=1e-5)


def test_many_threads_share_one_engine(yamnet, waves):
    engine = PruningEngine(yamnet, waves[:3], batch_size=3)
    want = engine.logits(SELECTIONS)
    weights = {k: v.clone() for k, v in yamnet.module.state_dict().items()}
    got, errors = {}, []

    def session(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = engine.logits([SELECTIONS[i % len(SELECTIONS)]])[0]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i, logits in got.items():
        np.testing.assert_array_equal(logits, want[i % len(SELECTIONS)])
    for k, v in yamnet.module.state_dict().items():
        assert torch.equal(v, weights[k])


# ---------- edits: any function of a layer's output (e.g. an SAE latent ablation), same per-thread hook ----------
def test_an_edit_that_zeroes_units_equals_pruning_them(yamnet, waves):
    engine = PruningEngine(yamnet, waves, batch_size=2)

    def zero(units):
        def edit(y):  # conv output (rows, channels, freq, time)
            y = y.clone()
            y[:, units] = 0
            return y
        return edit

    sels = [{"block3.pointwise": [1, 2, 3], "block9.pointwise": [7]}, {"block14.pointwise": [9]}]
    edits = [{layer: zero(ids) for layer, ids in s.items()} for s in sels]
    got = engine.edited_logits([*edits, {}])
    for want, have in zip(engine.logits(sels), got, strict=False):
        np.testing.assert_array_equal(have, want)
    assert got[-1] is engine.baseline  # no edit: no pass


def test_an_sae_style_ablation_removes_a_direction():
    """What an SAE latent ablation does to a layer: subtract the latent's decoder direction times its code."""
    model, (x, _) = tiny_model(), tiny_inputs()
    d = torch.tensor([1.0, 0.0, 0.0, 1.0]) / np.sqrt(2)  # a latent's unit decoder direction over fc1's 4 units

    def ablate(y):
        return y - (y @ d)[:, None] * d

    got = PruningEngine(model, x, batch_size=4).edited_logits([{"fc1": ablate}])[0]
    h = np.c_[x[:, 0], x[:, 1], x[:, 2], x[:, 0] + x[:, 1]].astype(np.float64)  # fc1 before the ReLU
    dn = d.double().numpy()
    h = np.maximum(h - (h @ dn)[:, None] * dn, 0)
    np.testing.assert_allclose(got, h @ np.array(CLASSIFIER_W).T + np.array([0.5, -0.5, 0.0]), atol=1e-5)
    np.testing.assert_allclose(model.logits(x), expected_logits(x, []), atol=1e-5)  # nothing left behind


def test_edits_stay_in_their_thread_and_nest_with_pruning():
    model, (x, _) = tiny_model(), tiny_inputs()
    inside, other_done, seen = threading.Barrier(2), threading.Event(), {}

    def double(y):
        return 2 * y

    def editing_session():
        with edited(model, {"fc1": double}), pruned(model, {"classifier": [0]}):
            inside.wait(timeout=10)
            other_done.wait(timeout=10)
            seen["edited"] = model.logits(x)

    def plain_session():
        inside.wait(timeout=10)
        seen["plain"] = model.logits(x)
        other_done.set()

    threads = [threading.Thread(target=editing_session), threading.Thread(target=plain_session)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    np.testing.assert_allclose(seen["plain"], expected_logits(x, []), atol=1e-5)
    want = 2 * (expected_logits(x, []) - [0.5, -0.5, 0.0]) + [0.5, -0.5, 0.0]  # hidden doubled, ReLU keeps it
    want[:, 0] = 0  # classifier unit 0 pruned inside the edit
    np.testing.assert_allclose(seen["edited"], want, atol=1e-5)


def test_bad_edits_are_refused_before_any_pass():
    model, (x, _) = tiny_model(), tiny_inputs()
    engine = PruningEngine(model, x, batch_size=4)
    with pytest.raises(ModelError, match="has no layer"):
        engine.edited_logits([{"nope": lambda y: y}])
    with pytest.raises(ModelError, match="must be a function"):
        engine.edited_logits([{"fc1": 0.0}])


def test_one_mask_zeroes_the_units_in_place(yamnet, waves):
    """One selection per pass (the CPU case) costs what zeroed weight rows cost: the pruned units are
    overwritten in the layer's own output, no masked copy of every output is made."""
    from and_engine.models.base import install_unit_masks

    install_unit_masks(yamnet)
    module = yamnet.module.get_submodule(yamnet.layer("block3.pointwise").module_path)
    seen = {}
    first = module.register_forward_hook(lambda _m, _i, out: seen.__setitem__("raw", out.data_ptr()), prepend=True)
    last = module.register_forward_hook(lambda _m, _i, out: seen.update(final=out.data_ptr(), out=out.clone()))
    try:
        with pruned(yamnet, {"block3.pointwise": [1, 2, 3]}):
            yamnet.logits(waves[:1])
    finally:
        first.remove()
        last.remove()
    assert seen["raw"] == seen["final"]
    assert not seen["out"][:, [1, 2, 3]].any() and seen["out"][:, 0].any()
