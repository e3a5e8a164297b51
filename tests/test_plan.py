"""``python -m and_engine plan``: sizing a run before it, on a database that does not exist (an ESC-50-shaped
configuration, AST-base from a checkpoint folder holding only its config.json), on a built one, and
agreeing with what a build then sends (the recording fake of vllm)."""

from __future__ import annotations

import json

from _tiny import write_config
from fakes import vllm_calls

from and_engine.cli import main
from and_engine.config import load_config
from and_engine.pipeline.build import build
from and_engine.pipeline.core import Progress
from and_engine.pipeline.plan import format_plan, make_plan
from and_engine.store.results import ResultsStore

AST_BASE = {"model_type": "audio-spectrogram-transformer", "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "num_mel_bins": 128, "max_length": 1024,
            "patch_size": 16, "frequency_stride": 10, "time_stride": 10,
            "id2label": {str(i): f"class{i}" for i in range(50)}, "label2id": {f"class{i}": i for i in range(50)}}


def _word_tokenizer(folder):
    """A word-level tokenizer saved as a model directory's tokenizer (one token per word)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "the": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(folder))


def _esc50_config(tmp_path):
    esc = tmp_path / "ESC-50-master"
    (esc / "meta").mkdir(parents=True)
    rows = [f"{i}-{c}.wav,{i % 5 + 1},{c},class{c}" for c in range(50) for i in range(40)]
    (esc / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + "\n".join(rows) + "\n")
    ckpt, llm = tmp_path / "ast-esc50", tmp_path / "llama-8b-instruct"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(AST_BASE))  # no weights: plan needs none
    llm.mkdir()
    _word_tokenizer(llm)
    body = f"""
[[models]]
name = "ast"
kind = "ast-checkpoint"
checkpoint = "{ckpt}"

[captions]
backend = "audio-llm"
model_path = "/models/Qwen2-Audio-7B-Instruct"

[summaries.llm]
backend = "vllm"
model = "{llm}"
max_new_tokens = 512
"""
    path = write_config(tmp_path, body, name="esc50-ast", db_name="esc50.duckdb", max_clips=0)
    text = path.read_text().replace('kind = "demo"', 'kind = "esc50"').replace(
        f'path = "{write_config.__globals__["PROJECT_ROOT"] / "data" / "demo"}"', f'path = "{esc}"')
    path.write_text(text)
    return path


def test_plan_sizes_an_esc50_run_before_anything_exists(tmp_path, capsys):
    path = _esc50_config(tmp_path)
    plan = make_plan(load_config(path), None)
    assert plan.n_clips == 2000 and len(set(plan.labels)) == 50 and not plan.exists
    (ast,) = plan.models
    assert len(ast.layers) == 37 and sum(ast.layers.values()) == 55_346  # 12 x (768 + 3072 + 768) + 50
    assert ast.layers["block0.mlp.fc1"] == 3072 and ast.source.startswith("the architecture")
    assert set(plan.states["state"]) <= {"new", "maybe new"}
    assert (plan.states["stage"] == "summaries").sum() == 37
    rounds = {r.kind: r for r in plan.rounds}
    assert [r.round for r in plan.rounds] == [1, 2, 2]
    summ, icl, adj = rounds["summaries"], rounds["ICL"], rounds["adjective filter"]
    assert summ.prompts == summ.unique == summ.send == summ.estimated == 110_692 and summ.cached == 0
    assert icl.send == 55_346 and adj.send == 2000
    assert summ.answer_tokens_max == 110_692 * 512 and summ.answer_tokens_typical is None
    # K = 5 assumed audio-LLM captions of 400 characters + the instruction (~2,150 characters), counted in
    # words by the model's (word-level) tokenizer at its characters-per-word on English prose (~5-6)
    assert 300 * 110_692 < summ.prompt_tokens < 450 * 110_692
    assert any("the model's tokenizer (llama-8b-instruct)" in n for n in plan.notes)
    assert main(["plan", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2,000 clips, 50 classes" in out and "neurons: 55,346" in out and "<=110,692" in out
    assert "does not exist yet" in out


def test_plan_on_a_built_database_and_what_the_build_then_sends(tmp_path, fake_vllm):
    body = '[[models]]\nname = "yamnet"\nkind = "yamnet"\nlayers = ["block1.conv", "block2.pointwise"]\n{llm}'
    rule = write_config(tmp_path, body.format(llm=""), max_clips=26)
    config = load_config(rule)
    build(config, Progress(quiet=True), until="dissect")
    with ResultsStore(config.resolve(config.run.database), read_only=True) as store:
        done = make_plan(config, store)
        unique = store.query_df("SELECT count(DISTINCT cache_key) AS n FROM summaries")["n"][0]
    assert done.exists and all(m.source == "the database" for m in done.models)
    llm_stages = done.states[done.states["stage"].isin(["summaries", "module_a_icl", "adjective_checks"])]
    assert set(llm_stages["state"]) == {"up to date"} and done.rounds == []
    assert "none: every LLM step is up to date" in "\n".join(format_plan(done))

    vllm = load_config(write_config(tmp_path, body.format(llm='[summaries.llm]\nbackend = "vllm"\nmodel = "m"\n'),
                                    max_clips=26))
    with ResultsStore(vllm.resolve(vllm.run.database), read_only=True) as store:
        plan = {r.kind: r for r in make_plan(vllm, store).rounds}
    summ = plan["summaries"]  # extremes and captions are built: the prompts are exact, none cached for vllm
    assert summ.estimated == 0 and summ.unique == summ.send == unique and summ.steps == 2
    assert plan["ICL"].estimated > 0  # its descriptions are the summaries still to come
    build(vllm, Progress(quiet=True), until="dissect")
    assert vllm_calls(fake_vllm)[0] == ("chat", summ.send)
    assert vllm_calls(fake_vllm)[1][1] <= plan["ICL"].send + plan["adjective filter"].send
