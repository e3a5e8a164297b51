"""``status`` and ``build`` agree on every configuration key.

For each leaf key of ``Config`` (a key added to ``config.py`` without an entry in ``CHANGES`` fails
``test_every_config_key_has_a_change``), a tiny configuration is built once, its database copied, the
key changed to another valid value, and the (stage, scope) steps that ``status`` calls stale, new or
removed are compared with what a real build of the changed configuration then computes and removes.
To stay affordable the configuration is the tiny one cut down (26 one-second clips, smaller layers, two
training epochs), and the builds share loaded encoders and taggers (``build(backends=...)``) and the
trained-variant cache. The keys of ``graph.NOT_READ`` (which by contract recompute nothing) share a build
per config section: ``status`` is asked about each key alone, and must call every step up to date, and one
build of all the section's changes together must compute and remove nothing; the keys that choose where
or how the code runs (``MODE_KEYS``) keep a build of their own. A failing section is rechecked key by key,
one build each, to name the key.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import write_config

from and_engine.config import PROJECT_ROOT, Config, LLMConfig, SummaryOverride, load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.pipeline.graph import NOT_READ, STAGE, config_keys
from and_engine.pipeline.status import step_states
from and_engine.store.results import ResultsStore


@dataclass(frozen=True)
class Change:
    """``key`` set to ``value`` (a callable gets the environment; ``models[].x``: of ``model`` only), plus
    the companion keys ``also`` that make the new value valid, applied to the database of ``base``."""

    value: Any
    model: str = ""
    also: dict = field(default_factory=dict)
    base: str = "tiny"


LLM_VALUES = {"model": "unused-model", "base_url": "http://127.0.0.1:9", "temperature": 0.5, "top_p": 0.9,
              "max_new_tokens": 512, "seed": 1, "timeout_s": 60.0, "batch_size": 4, "device": "cpu",
              "dtype": "float32", "quantization": "fp8", "n_gpu_layers": 0, "tensor_parallel_size": 2,
              "max_model_len": 4096, "gpu_memory_utilization": 0.5, "max_num_seqs": 64,
              "commit_every": 2}


def served(prefix: str) -> dict:
    """The companion keys of ``backend = "openai"``: a model name and the test's server."""
    return {f"{prefix}.model": "rule-served", f"{prefix}.base_url": lambda env: env.openai_url}


CHANGES: dict[str, Change] = {
    "run.name": Change("renamed"),
    "run.ratings_database": Change(lambda env: str(env.folder / "other-ratings.duckdb")),
    "run.live_llm_database": Change(lambda env: str(env.folder / "other-live.duckdb")),
    "run.cache_dir": Change(lambda env: env.copied_cache()),
    "run.seed": Change(1),
    "probing_set.kind": Change("csv", also={"probing_set.path": lambda env: env.demo_csv()}),
    "probing_set.path": Change(lambda env: env.demo_link()),
    "probing_set.clip_seconds": Change(1.5),
    "probing_set.min_seconds": Change(0.3),
    "probing_set.silence_dbfs": Change(-80.0),
    "probing_set.heldout_fold": Change(2),
    "probing_set.max_clips": Change(25),
    "models[].name": Change("yamnet-renamed", model="yamnet"),
    "models[].kind": Change("yamnet-finetuned", model="yamnet-frozen"),
    "models[].checkpoint": Change("unused/checkpoint", model="yamnet-frozen"),
    "models[].layers": Change(("block2.pointwise",), model="yamnet"),
    "models[].train_epochs": Change(3, model="yamnet-frozen"),
    "models[].train_lr": Change(0.002, model="yamnet-frozen"),
    "models[].options": Change({"include_depthwise": True}, model="yamnet"),
    "models[].sae_layers": Change((), model="yamnet"),
    "sae.expansion": Change(3),
    "sae.k": Change(3),
    "sae.epochs": Change(1),
    "sae.lr": Change(0.001),
    "sae.batch_size": Change(128),
    "sae.max_vectors": Change(1000),
    "activations.pool": Change("mean"),
    "activations.batch_size": Change(8),
    "activations.top_k": Change(4),
    "activations.keep_maps": Change(False),
    "activations.device": Change("cpu:0"),
    "activations.num_threads": Change(2),
    "activations.precision": Change("bfloat16"),
    "activations.compile": Change(True),
    "captions.backend": Change("audio-llm", also={"captions.model_path": lambda env: env.tiny_model("qwen2-audio"),
                                                  "captions.max_new_tokens": 4}),
    "captions.model_path": Change("unused/model"),
    "captions.prompt": Change("Describe the sound."),
    "captions.batch_size": Change(4),
    "captions.device": Change("cpu:0"),
    "captions.max_new_tokens": Change(128),
    "captions.tagger": Change("none"),
    "captions.tag_threshold": Change(0.2),
    "captions.max_tags": Change(2),
    "summaries.llm.backend": Change("openai", also=served("summaries.llm")),
    **{f"summaries.llm.{k}": Change(v) for k, v in LLM_VALUES.items()},
    # the override keys change the one override of a database built with one (all defaults)
    "summaries.overrides[].llm.backend": Change("openai", also=served("summaries.overrides[].llm"), base="override"),
    **{f"summaries.overrides[].llm.{k}": Change(v, base="override") for k, v in LLM_VALUES.items()},
    "summaries.overrides[].models": Change(("yamnet",), base="override"),
    "summaries.overrides[].layers": Change(("classifier",), base="override"),
    "summaries.overrides[].sample_neurons": Change(8, base="override"),
    "module_a.concept_set": Change("esc50"),
    "module_a.text_encoder": Change(lambda env: "clip:" + env.tiny_model("clip")),
    "module_a.audio_text_model": Change(lambda env: "clap:" + env.tiny_model("clap")),
    "module_a.similarities": Change(("cos", "wpmi")),
    "module_a.db_scope": Change("topk"),
    "module_a.icl": Change(False),
    "module_a.icl_summary": Change("calibrated"),
    "module_a.top_n": Change(3),
    "module_b.threshold": Change(0.5),
    "module_b.sentence_encoder": Change(lambda env: "clip:" + env.tiny_model("clip")),
    "module_b.keep_opposites": Change(True),
    "module_c.tagger": Change("textblob"),
    "module_c.adjective_filter": Change(False),
    "analyses.n_clusters": Change(3),
    "analyses.elbow_max_k": Change(5),
    "analyses.taus": Change((3, 4)),
    "analyses.prune_percents": Change((10.0,)),
    "analyses.seeds": Change((1,)),
    "analyses.closed_top_n_for_pruning": Change(2),
    "analyses.basic_adjectives": Change(("loud", "clear")),
    "analyses.sentence_encoder": Change(lambda env: "clip:" + env.tiny_model("clip")),
    "analyses.pruning_similarity": Change("cos"),
    "analyses.prune_classifier": Change(True),
    "analyses.acoustic_adjectives": Change(("loud",)),
    "analyses.top_adjectives_n": Change(10),
    "analyses.cluster_words_n": Change(20),
    "scores.scorers": Change(("embedding",)),
    "scores.llm_scorers": Change(("detection", "simulation")),
    "scores.n_activating": Change(10),
    "scores.n_non_activating": Change(10),
    "scores.activating_fraction": Change(0.3),
    "scores.text_encoder": Change(lambda env: "clip:" + env.tiny_model("clip")),
    "scores.audio_text_model": Change(lambda env: "clap:" + env.tiny_model("clap")),
    "scores.llm_neurons": Change(6),
    "scores.llm_clips_per_prompt": Change(5),
    "ground_truth.label_words": Change(str(PROJECT_ROOT / "benchmarks" / "label_words.csv")),
    "analyses.workers": Change(2),
    "analyses.related_top_n": Change(3),
    "device.text_encoders": Change("cpu:0"),
    "device.audio_text": Change("cpu:0"),
    "device.text_batch_size": Change(16),
    "device.audio_batch_size": Change(4),
    "execution.engine": Change("ray"),  # every step current: Ray is never started (it starts on first use)
    "execution.address": Change("auto"),
    **{f"execution.{stage}.{k}": Change(v) for stage in ("activations", "captions", "embeddings", "llm")
       for k, v in (("num_cpus", 0.5), ("num_gpus", 1.0), ("actors", 3), ("batch_size", 4))},
}
EXPLICIT = {"run.database"}  # a new database: test_a_new_database_is_reported_and_never_read
# NOT_READ keys that select a code path (device, compiled forward, Ray): a build each, so that no other
# key's change can hide a fingerprint read on one path only
MODE_KEYS = {"activations.device", "activations.compile", "captions.device", "summaries.llm.device",
             "summaries.overrides[].llm.device", "device.text_encoders", "device.audio_text", "execution.engine"}


def _section(key: str) -> str:
    """The group of a NOT_READ key: its top-level section, and its base if not the tiny one."""
    base = CHANGES[key].base
    return key.split(".")[0] + ("" if base == "tiny" else f"@{base}")


UNREAD_SECTIONS: dict[str, tuple[str, ...]] = {}
for _key in sorted(k for k in CHANGES if k in NOT_READ and k not in MODE_KEYS):
    UNREAD_SECTIONS[_section(_key)] = (*UNREAD_SECTIONS.get(_section(_key), ()), _key)
ALONE = sorted(set(CHANGES) - {k for keys in UNREAD_SECTIONS.values() for k in keys})


def set_key(obj: Any, key: str, value: Any, model: str = "") -> Any:
    """``obj`` (a Config or one of its tables) with dotted ``key`` set; ``name[]`` applies to every item
    (``models[]``: to the model named ``model``)."""
    head, _, rest = key.partition(".")
    if head.endswith("[]"):
        items = tuple(set_key(item, rest, value) if not model or getattr(item, "name", "") == model else item
                      for item in getattr(obj, head[:-2]))
        return dataclasses.replace(obj, **{head[:-2]: items})
    return dataclasses.replace(obj, **{head: set_key(getattr(obj, head), rest, value) if rest else value})


class _RuleServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering with the embedded rule summariser."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = self.server.llm.generate([body["messages"][0]["content"]])[0]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Env:
    """The built base databases and what the changed values need (made on first use)."""

    def __init__(self, folder: Path, base: Config, openai_url: str):
        self.folder, self.base, self.openai_url = folder, base, openai_url
        self.backends: dict = {}
        self.databases: dict[str, Path] = {}
        self._made: dict[str, str] = {}

    def config(self, name: str) -> Config:
        if name == "override":
            return dataclasses.replace(self.base, summaries=dataclasses.replace(
                self.base.summaries, overrides=(SummaryOverride(llm=LLMConfig()),)))
        return self.base

    def database(self, name: str) -> Path:
        """The database of base ``name``, built once (the override base from a copy of the tiny one)."""
        if name not in self.databases:
            path = self.folder / f"base-{name}.duckdb"
            if name != "tiny":
                shutil.copy(self.database("tiny"), path)
            build(with_database(self.config(name), path), Progress(quiet=True), backends=self.backends)
            self.databases[name] = path
        return self.databases[name]

    def _once(self, name: str, make) -> str:
        if name not in self._made:
            self._made[name] = str(make())
        return self._made[name]

    def copied_cache(self) -> str:
        cache = Path(self.base.resolve(self.base.run.cache_dir))
        return self._once("cache", lambda: shutil.copytree(cache, self.folder / "cache-copy"))

    def demo_link(self) -> str:
        def make():
            (self.folder / "demo-link").symlink_to(PROJECT_ROOT / "data" / "demo")
            return self.folder / "demo-link"
        return self._once("link", make)

    def demo_csv(self) -> str:
        """The base's 26 demo clips (first of each label) copied beside a ``path,label,fold`` CSV."""
        def make():
            import pandas as pd

            meta = pd.read_csv(PROJECT_ROOT / "data" / "demo" / "meta.csv").sort_values("filename")
            meta = meta.groupby("label").head(1)
            for name in meta["filename"]:
                (self.folder / "csv" / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(PROJECT_ROOT / "data" / "demo" / name, self.folder / "csv" / name)
            meta[["filename", "label", "fold"]].set_axis(["path", "label", "fold"], axis=1).to_csv(
                self.folder / "csv" / "clips.csv", index=False)
            return self.folder / "csv" / "clips.csv"
        return self._once("csv", make)

    def tiny_model(self, kind: str) -> str:
        from _describe_fixtures import save_tiny_qwen2_audio
        from _dissect_fixtures import save_tiny_clap, save_tiny_clip

        save = {"clip": save_tiny_clip, "clap": save_tiny_clap, "qwen2-audio": save_tiny_qwen2_audio}[kind]
        return self._once(kind, lambda: save(self.folder / kind))


BODY = """
[[models]]
name = "yamnet"
kind = "yamnet"
layers = ["block1.conv"]
sae_layers = ["block1.conv"]

[[models]]
name = "yamnet-frozen"
kind = "yamnet-frozen"
layers = ["block1.conv", "classifier"]
train_epochs = 2

[sae]
expansion = 2
k = 4
epochs = 2
batch_size = 256
max_vectors = 2000

[summaries.llm]
backend = "rule"

[scores]
llm_scorers = ["detection"]
llm_neurons = 4

[analyses]
n_clusters = 4
elbow_max_k = 6
prune_percents = [5.0]
seeds = [0]
"""


def with_database(config: Config, path: Path) -> Config:
    return dataclasses.replace(config, run=dataclasses.replace(config.run, database=str(path)))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agree")
    config = set_key(load_config(write_config(folder, BODY, max_clips=26)), "probing_set.clip_seconds", 1.0)
    from and_engine.backends.llm_rule import RuleLLM

    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuleServer)
    server.llm = RuleLLM()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    threads = torch.get_num_threads()
    yield Env(folder, config, f"http://127.0.0.1:{server.server_port}")
    torch.set_num_threads(threads)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _resolve(value: Any, env: Env) -> Any:
    return value(env) if callable(value) else value


def changed_config(env: Env, keys: tuple[str, ...], database: Path) -> Config:
    """The base of ``keys`` (one base for all) with each key's change (and companions) applied."""
    base, = {CHANGES[k].base for k in keys}
    config = env.config(base)
    for key in keys:
        change = CHANGES[key]
        for k, v in {key: change.value, **change.also}.items():
            config = set_key(config, k, _resolve(v, env), model=change.model)
    return with_database(config, database)


def _steps(db: Path) -> tuple:
    with ResultsStore(db, read_only=True) as store:
        return store.read("steps", ["stage", "scope", "params_json", "fingerprint", "run_id"]), store.read("layers")


def said_by_status(env: Env, key: str, db: Path) -> dict[str, set]:
    """What ``status`` says of the base's database ``db`` under the change of ``key`` alone: state -> steps."""
    base = env.config(CHANGES[key].base)
    config = changed_config(env, (key,), db)
    assert config != with_database(base, db), f"{key}: the change changes nothing"
    states, _ = step_states(config, *_steps(db))
    return {s: set(zip(states.loc[states["state"] == s, "stage"], states.loc[states["state"] == s, "scope"]))
            for s in ("stale", "new", "maybe new", "removed")}


def built(env: Env, keys: tuple[str, ...], db: Path) -> tuple[set, set, set]:
    """A real build of the changes of ``keys`` into ``db`` -> (steps before, steps it computed, steps gone)."""
    steps, _ = _steps(db)
    result = build(changed_config(env, keys, db), Progress(quiet=True), backends=env.backends)
    after, _ = _steps(db)
    before_keys = set(zip(steps["stage"], steps["scope"]))
    ran = after[after["run_id"] == result.run_id]
    return before_keys, set(zip(ran["stage"], ran["scope"])), before_keys - set(zip(after["stage"], after["scope"]))


def disagreements(env: Env, key: str, db: Path) -> list[str]:
    """``status`` under the change of ``key`` vs what a build of it then computes and removes, on ``db`` (a copy
    of the base's database, changed by the build) -> what disagrees ([] when status says what the build did)."""
    said = said_by_status(env, key, db)
    before_keys, computed, gone = built(env, (key,), db)
    dropped = {k for k in gone & said["stale"] if STAGE[k[0]].optional}  # stale optional steps may go instead
    wrong, recomputed = [], (computed & before_keys) | dropped
    if said["stale"] != recomputed:
        wrong.append(f"{key}: status stale vs build recomputed: {said['stale']} vs {recomputed}")
    if said["removed"] != gone - dropped:
        wrong.append(f"{key}: removed: {said['removed']} vs {gone - dropped}")
    if not said["new"] <= computed - before_keys <= said["new"] | said["maybe new"]:
        wrong.append(f"{key}: new steps: {said['new']} <= {computed - before_keys} <= +{said['maybe new']}")
    return wrong


def _copy_of_base(env: Env, key: str, db: Path) -> Path:
    """A copy of the database of the base ``key`` changes, at ``db``."""
    shutil.copy(env.database(CHANGES[key].base), db)
    return db


def test_every_config_key_has_a_change():
    assert set(CHANGES) | EXPLICIT == set(config_keys())


def test_every_not_read_key_is_in_one_section_or_alone():
    grouped = [k for keys in UNREAD_SECTIONS.values() for k in keys]
    assert len(grouped) == len(set(grouped)) and set(grouped) <= set(NOT_READ) and not set(grouped) & MODE_KEYS
    assert sorted([*grouped, *ALONE]) == sorted(CHANGES) and MODE_KEYS <= set(ALONE) & set(NOT_READ)


@pytest.mark.parametrize("key", ALONE)
def test_status_says_what_a_build_recomputes(env, key, tmp_path):
    db = _copy_of_base(env, key, tmp_path / "changed.duckdb")
    wrong = disagreements(env, key, db)
    assert not wrong, "\n".join(wrong)
    db.unlink()


@pytest.mark.parametrize("section", sorted(UNREAD_SECTIONS))
def test_a_key_that_is_not_read_recomputes_nothing(env, section, tmp_path):
    """Each NOT_READ key of ``section``: status calls every step up to date; one build of all the section's
    changes computes and removes nothing. On failure each key is built alone to say which disagrees."""
    keys = UNREAD_SECTIONS[section]
    db = _copy_of_base(env, keys[0], tmp_path / "changed.duckdb")
    said = {k: {s: steps for s, steps in said_by_status(env, k, db).items() if steps} for k in keys}
    _, computed, gone = built(env, keys, db)
    if any(said.values()) or computed or gone:
        alone = [w for i, k in enumerate(keys)
                 for w in disagreements(env, k, _copy_of_base(env, k, tmp_path / f"alone-{i}.duckdb"))]
        pytest.fail(f"{section}: status {said}; the build of all of {keys} computed {len(computed)} step(s) of "
                    f"{sorted({stage for stage, _ in computed})}, removed {sorted(gone)}; each key alone: "
                    f"{alone or 'no disagreement: only the keys together'}")
    db.unlink()


def test_a_new_database_is_reported_and_never_read(env, tmp_path, capsys):
    from and_engine.cli import main

    elsewhere = tmp_path / "elsewhere.duckdb"
    config = with_database(env.base, elsewhere)
    toml = tmp_path / "elsewhere.toml"
    toml.write_text((env.folder / "tiny.toml").read_text().replace(str(env.folder / "tiny.duckdb"), str(elsewhere)))
    assert main(["status", "--config", str(toml)]) == 1  # nothing built: said on stderr, with the build to run
    assert "nothing built yet" in capsys.readouterr().err
    shutil.copy(env.database("tiny"), elsewhere)  # the same results under another path: nothing to redo
    steps, layers = _steps(elsewhere)
    states, _ = step_states(config, steps, layers)
    assert set(states["state"]) == {"up to date"}
    assert build(config, Progress(quiet=True), backends=env.backends).executed == []
