"""GRPO on the tiny model: rewards from registry metrics, the loss mask and the KL term in place, checkpoints
evaluated and selected like SFT's, compared with the SFT checkpoint it started from. The rewards' truth is built
by hand (answers whose right fields are known), not read from the code that scores them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunestack.config import FormatSection, parse_config


def _cfg(extra: dict | None = None):
    import yaml

    raw = {"data": {"path": "data.jsonl"}, "train": {"method": "grpo", **(extra or {})},
           "evaluate": {"metrics": ["exact_match", "field_accuracy"], "format": {"type": "json"}}}
    return parse_config(yaml.safe_dump(raw), [])


def _row(answer: dict | str) -> dict:
    content = answer if isinstance(answer, str) else json.dumps(answer)
    return {"messages": [{"role": "user", "content": "report"}, {"role": "assistant", "content": content}]}


def test_rewards_score_answers_whose_right_fields_are_known():
    from tunestack.evaluate.registry import FormatCheck
    from tunestack.evaluate.rewards import bind_rewards, score_all, total

    cfg = _cfg({"grpo": {"rewards": [{"metric": "exact_match"}, {"metric": "field_accuracy", "weight": 2},
                                     {"metric": "format", "weight": 0.5}]}})
    rewards = bind_rewards(cfg, FormatCheck("json"))
    reference = {"a": 1, "b": "x", "c": True, "d": None}
    rows = [_row(reference)] * 4
    answers = [json.dumps(reference), json.dumps({**reference, "b": "y"}),  # all right; three of four fields
               '{"a": 1}', "not json"]  # one of four fields; nothing
    scores = score_all(rewards, answers, rows)
    assert scores == {"exact_match": [1.0, 0.0, 0.0, 0.0], "field_accuracy": [1.0, 0.75, 0.25, 0.0],
                      "format": [1.0, 1.0, 1.0, 0.0]}
    assert total(rewards, scores) == [3.5, 2.0, 1.0, 0.0]


def test_default_rewards_are_the_headline_metric_and_the_format():
    from tunestack.evaluate.rewards import default_specs

    assert [(s.metric, s.weight) for s in default_specs(_cfg())] == [("exact_match", 1.0), ("format", 0.5)]


def test_config_refuses_groups_that_do_not_fill_a_step_and_rewards_that_cannot_score():
    from tunestack.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of 3"):
        _cfg({"micro_batch_size": 8, "grpo": {"group_size": 3}})
    with pytest.raises(ConfigError, match="judge.model"):
        _cfg({"grpo": {"rewards": [{"metric": "judge"}]}})
    with pytest.raises(ConfigError) as caught:
        parse_config("data: {path: d.jsonl}\ntrain: {method: grpo, grpo: {rewards: [{metric: format}]}}\n"
                     "evaluate: {format: {type: none}}",
                     [])
    assert "teaches nothing" in str(caught.value)


def test_unknown_and_lower_is_better_rewards_are_reported_with_their_path():
    from tunestack.errors import ConfigError
    from tunestack.evaluate.registry import FormatCheck
    from tunestack.evaluate.rewards import bind_rewards

    cfg = _cfg({"grpo": {"rewards": [{"metric": "exact_macth"}, {"metric": "regex", "params": {"patern": "x"}}]}})
    with pytest.raises(ConfigError) as caught:
        bind_rewards(cfg, FormatCheck("json"))
    text = str(caught.value)
    assert "train.grpo.rewards.0.metric" in text and "Did you mean 'exact_match'" in text
    assert "train.grpo.rewards.1.params" in text and "patern" in text


def slow_reward(prediction: str, reference: str) -> float:
    import time

    if prediction == "slow":
        time.sleep(5)
    return 1.0


slow_reward.higher_is_better = True


def test_a_user_reward_that_runs_out_of_time_scores_zero_and_is_counted():
    import time

    from tunestack.evaluate.registry import FormatCheck
    from tunestack.evaluate.rewards import Timeouts, bind_rewards

    cfg = _cfg({"grpo": {"rewards": [{"metric": f"{__name__}:slow_reward"}], "reward_timeout": 0.2}})
    timeouts = Timeouts(0.2)
    (reward,) = bind_rewards(cfg, FormatCheck("json"), timeouts)
    started = time.time()
    assert reward.score(["fast", "slow", "fast"], [_row("x")] * 3) == [1.0, 0.0, 1.0]
    assert time.time() - started < 2 and timeouts.counts == {"slow_reward": 1} and reward.timed


def test_spread_counts_groups_without_signal():
    from tunestack.evaluate.rewards import spread

    found = spread([1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0], 4)
    assert found["groups"] == 3 and found["zero_spread_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert found["mean_group_std"] == pytest.approx(0.5 / 3, abs=1e-4)
    assert found["group_means"] == [1.0, 0.5, 0.0]


def test_the_mask_check_refuses_tokens_after_the_stop():
    from tunestack.errors import GuardError
    from tunestack.train.grpo import MaskCheck

    check = MaskCheck(stops=[2, 7], max_new_tokens=5)
    check([[5, 6, 2], [5, 5, 5, 5, 5], [9, 7]])
    assert check.describe() == {"answers": 3, "ended_with_stop": 2, "cut_at_max_new_tokens": 1}
    with pytest.raises(GuardError, match="past its stop"):
        check([[5, 2, 0, 0]])
    with pytest.raises(GuardError, match="cut short"):
        check([[5, 6]])


def _families() -> list[str]:
    from families import FAMILIES

    return sorted(FAMILIES)


@pytest.mark.parametrize("name", _families())
def test_grpo_prompts_tokenize_to_the_served_prompt(name, tmp_path: Path):
    """TRL tokenizes a text prompt with the tokenizer's own call: for the real templates (BOS written by the
    template, or added by the tokenizer) that must give exactly the ids evaluation and serving generate from."""
    from families import build_family_model

    from tunestack.chat import render_prompt
    from tunestack.demo.radiology import generate
    from tunestack.models import load_model
    from tunestack.train.grpo import prompt_text, trl_prompts

    rows = generate(6, seed=4)
    corpus = [m["content"] for row in rows for m in row["messages"]]
    _, tokenizer = load_model(build_family_model(name, tmp_path / name, corpus),
                              chat_template="plain" if name == "base" else None)
    conversations = [row["messages"][:-1] for row in rows]
    given = trl_prompts(tokenizer, conversations)  # as TRL gets them: conversations, fitted to the template
    for prompt, conversation in zip(given, conversations):  # what TRL's own rendering call makes of them
        ids = tokenizer.apply_chat_template(conversation=[prompt], add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"][0]
        assert list(ids) == render_prompt(tokenizer, conversation)
    if name != "base":  # text prompts (rows with tools): the tokenizer's call reads them back, BOS or not
        for conversation in conversations:
            text = prompt_text(tokenizer, conversation)
            assert tokenizer(text=text)["input_ids"] == render_prompt(tokenizer, conversation)


def choice_rows(n: int, seed: int) -> list[dict]:
    """Another shape of task than the quickstart's: which imaging modality a report names, as one option letter
    (A-D, in a fixed order), so a tiny SFT model answers in a letter and sampled answers disagree."""
    from tunestack.demo.radiology import MODALITY, generate

    options = sorted(MODALITY)
    menu = " ".join(f"{'ABCD'[k]}) {name}" for k, name in enumerate(options))
    out = []
    for row in generate(n, seed=seed):
        _, user, answer = row["messages"]
        letter = "ABCD"[options.index(json.loads(answer["content"])["modality"])]
        out.append({"messages": [{"role": "user", "content": f"{user['content']}\nWhich modality? {menu}"},
                                 {"role": "assistant", "content": letter}]})
    return out


@pytest.mark.integration
def test_grpo_from_an_sft_checkpoint_trains_evaluates_selects_and_serves(tiny_config: Path, tmp_path: Path):
    """SFT on a multiple-choice task, then GRPO from its chosen checkpoint with rewards from two registry metrics
    (choice and exact match); every sampled answer's mask checked; the KL term logged and non-zero once the policy
    moves; checkpoints evaluated while training and selected on the task metrics, against the SFT checkpoint; the
    export served by the real server and evaluated through it, answering as offline evaluation does."""
    from tunestack.cli import main
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages
    from tunestack.rundir import RunDir, read_json

    data = tmp_path / "choices.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in choice_rows(160, seed=8)))
    task = [f"data.path={data}", "evaluate.metrics=[choice, exact_match]", "evaluate.format.type=regex",
            "evaluate.format.pattern=(A|B|C|D)", "evaluate.max_new_tokens=8", "data.stratify_by=null",
            "evaluate.precision=fp32", "serve.backend=builtin"]
    sft = run_stages(load_config(tiny_config, [*task, "run.name=sft", "train.max_steps=40",
                                               "train.num_checkpoints=1"]), until="select")
    start = Path(sft.require("train")["checkpoints"][-1]["path"])
    overrides = [*task, "run.name=grpo", "train.method=grpo", f"train.init_from={start}", "train.max_steps=6",
            "train.micro_batch_size=16", "train.num_checkpoints=2", "train.learning_rate=2e-3",
            "train.grpo.group_size=8", "train.grpo.kl=0.1", "train.grpo.max_new_tokens=8",
            "train.grpo.rewards=[{metric: choice}, {metric: exact_match, weight: 0.5}]"]
    assert main(["run", str(tiny_config), *overrides]) == 0  # prepare, train, evaluate, select, export
    run = RunDir(Path(sft.root).parent / "grpo")
    train = run.require("train")
    grpo = train["grpo"]
    assert train["method"] == "grpo" and [r["name"] for r in grpo["rewards"]] == ["choice", "exact_match"]
    assert grpo["loss_mask"]["answers"] == 6 * 16  # every answer TRL trained on was checked
    logged = [json.loads(line) for line in (run.root / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    for r in logged:  # TRL's reward is our weighted sum of the two metrics' means
        assert r["reward"] == pytest.approx(r["rewards/choice/mean"] + 0.5 * r["rewards/exact_match/mean"],
                                            abs=1e-5)
        assert 0 <= r["frac_reward_zero_std"] <= 1 and r["completions/mean_length"] > 0
    assert any(r["frac_reward_zero_std"] < 1 for r in logged)  # some groups disagreed: there was signal
    # the reference is the SFT model (its adapter merged, the new one off): the same weights at step 1, so KL 0; the
    # base as reference would be far from it. Once the policy moves, the KL term is there
    assert logged[0]["kl"] == 0 and any(r["kl"] > 0 for r in logged[1:])
    evaluated = run.require("evaluate")
    assert [m["name"] for m in evaluated["models"]] == ["base", "step-000003", "step-000006"]
    assert evaluated["start"]["path"] == str(start)
    assert evaluated["start"]["metrics"]["choice"] == sft.require("evaluate")["models"][-1]["metrics"]["choice"]
    chosen = run.require("select")
    versus = chosen["against_start"]
    assert versus["start"] == str(start) and chosen["chosen"] in ("base", "step-000003", "step-000006")
    if chosen["chosen"] != "base":
        head = versus["metrics"]["choice"]
        low, high = head["ci95"]
        assert low <= head["difference"] <= high
        for metric in (head, versus["metrics"]["format_compliance"]):
            # 0/1 per row on 16 rows: the difference is the rows right that the start had wrong, minus the reverse
            assert metric["rows"] == 16 and metric["better"] + metric["worse"] <= 16
            assert metric["difference"] == pytest.approx((metric["better"] - metric["worse"]) / 16, abs=1e-4)
            changed = f"better on {metric['better']} rows, worse on {metric['worse']}, of 16"
            assert changed in (run.root / "report.md").read_text()
        assert "Rewards (GRPO)" in (run.root / "report.html").read_text()
        rendered_in_a_browser(run.root / "report.html")
    assert main(["serve", str(tiny_config), "--evaluate", *overrides]) == 0  # the export, through the built-in server
    served = read_json(run.root / "serve" / "served.json")
    assert served["kind"] == "export" and served["compared"] == 16 and served["identical"] == 16


def rendered_in_a_browser(page: Path) -> None:
    """The GRPO section in headless chromium: its table, its two-panel figure drawn at a readable size, and the
    comparison with the start (where `make browser` installed the browser)."""
    from browser import available, chrome, screenshot

    if not available():
        return
    with chrome() as driver:
        driver.get(page.as_uri())
        found = driver.execute_script(
            "const s = document.getElementById('grpo'); const svg = s.querySelector('svg.plot');"
            "const r = svg.getBoundingClientRect(); return [r.width, r.height, s.querySelectorAll('table').length,"
            " s.textContent.includes('Against the starting model')];")
        driver.execute_script("document.getElementById('grpo').scrollIntoView()")
        screenshot(driver, "report-grpo")
    width, height, tables, versus = found
    assert width > 400 and height > 150 and tables == 2 and versus, found


@pytest.mark.integration
def test_assess_measures_the_reward_spread_that_grpo_would_learn_from(tiny_config: Path, tmp_path: Path):
    """Answers sampled at a temperature so low that every group's answers are the same token for token score alike:
    every group is without signal, by construction. At temperature 1.5 the same prompts' answers differ."""
    from tunestack.assess.stage import run_assess
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages

    data = tmp_path / "choices.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in choice_rows(80, seed=3)))
    common = [f"data.path={data}", "data.stratify_by=null", "evaluate.metrics=[choice]", "evaluate.format.type=none",
              "evaluate.max_new_tokens=6", "train.method=grpo", "train.grpo.group_size=4",
              "train.grpo.spread_prompts=12", "train.grpo.rewards=[{metric: contains, params: {separator: '|'}}]",
              "assess.examples=16", "assess.consistency_examples=0"]
    cfg = load_config(tiny_config, [*common, "train.grpo.temperature=0.01"])
    run = run_stages(cfg, until="prepare")
    cold = run_assess(cfg, run)["reward_spread"]
    assert cold["prompts"] == 12 and cold["zero_spread_share"] == 1.0 and cold["mean_group_std"] == 0.0
    hot = run_assess(load_config(tiny_config, [*common, "train.grpo.temperature=1.5"]), run)["reward_spread"]
    assert hot["prompts"] == 12 and hot["zero_spread_share"] < 1.0
    assert "Reward spread (GRPO)" in (run.root / "assess" / "assess.md").read_text()


def test_an_openai_grader_becomes_rewards_that_score_as_it_would(tmp_path: Path):
    """A migrating user's RFT grader: a multi grader of a string check, a fuzzy match and a Python grader, weighted
    0.5 / 0.2 / 0.3. Each answer's expected score is worked out by hand below."""
    from tunestack.evaluate.registry import FormatCheck
    from tunestack.evaluate.rewards import bind_rewards, reward_specs, score_all, total

    source = ("def grade(sample, item):\n"
              "    return 1.0 if sample['output_text'].strip().lower() == item['reference_answer'].lower() else 0.0\n")
    grader = {"type": "multi", "calculate_output": "0.5 * exact + 0.2 * close + 0.3 * code",
              "graders": {"exact": {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                                    "reference": "{{item.reference_answer}}", "operation": "eq"},
                          "close": {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
                                    "reference": "{{item.reference_answer}}", "evaluation_metric": "fuzzy_match"},
                          "code": {"type": "python", "name": "code", "source": source}}}
    path = tmp_path / "grader.json"
    path.write_text(json.dumps({"type": "reinforcement", "reinforcement": {"grader": grader}}))
    cfg = _cfg({"grpo": {"openai_grader": str(path)}})
    assert [(s.metric.rpartition(":")[2], s.weight) for s in reward_specs(cfg)] == [
        ("string_check", 0.5), ("fuzzy_match", 0.2), ("python_grader", 0.3)]
    rewards = bind_rewards(cfg, FormatCheck("json"))
    assert [r.timed for r in rewards] == [False, False, True]  # the user's code runs under the time limit
    rows = [_row("Paris")] * 3
    scores = score_all(rewards, ["Paris", "paris ", "Lyon"], rows)
    assert scores["string_check"] == [1.0, 0.0, 0.0] and scores["python_grader"] == [1.0, 1.0, 0.0]
    assert scores["fuzzy_match"][0] == 1.0 and scores["fuzzy_match"][2] == 0.0  # no letter of Lyon in Paris
    assert total(rewards, scores)[0] == pytest.approx(1.0)


def test_openai_graders_that_have_no_counterpart_are_refused_with_the_reason(tmp_path: Path):
    from tunestack.errors import ConfigError
    from tunestack.evaluate.graders import grader_specs

    path = tmp_path / "grader.json"
    path.write_text(json.dumps({"type": "multi", "calculate_output": "exact * bleu", "graders": {
        "exact": {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
                  "operation": "eq"},
        "bleu": {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
                 "evaluation_metric": "bleu"}}}))
    with pytest.raises(ConfigError, match="not a weighted sum"):
        grader_specs(path)
    path.write_text(json.dumps({"type": "label_model", "model": "o4-mini", "input": [], "labels": ["a"],
                                "passing_labels": ["a"]}))
    with pytest.raises(ConfigError, match="label_model"):
        grader_specs(path)
    path.write_text(json.dumps({"type": "text_similarity", "input": "{{sample.output_text}}",
                                "reference": "{{item.answer}}", "evaluation_metric": "rouge_l"}))
    with pytest.raises(ConfigError, match="rouge_l"):
        grader_specs(path)


def test_a_score_model_grader_asks_the_judge_endpoint_with_its_own_messages(tmp_path: Path):
    """The grader's messages reach the real (test) server with the answer and the reference filled in; its reply's
    number is read within the grader's range: the server scores 7 of 10 when the answer names the reference."""
    from openai_server import OpenAIServer

    from tunestack.evaluate.registry import FormatCheck
    from tunestack.evaluate.rewards import bind_rewards, judge_reward, score_all

    grader = {"type": "score_model", "name": "judge", "model": "o4-mini", "range": [0, 10],
              "input": [{"role": "user", "content": "Reference: {{item.reference_answer}}\nAnswer: "
                                                    "{{sample.output_text}}\nScore 0-10."}]}
    (tmp_path / "grader.json").write_text(json.dumps(grader))

    def reply(body: dict) -> str:
        text = body["messages"][0]["content"]
        reference = text.split("Reference: ")[1].split("\n")[0]
        return "7" if reference in text.split("Answer: ")[1] else "Score: 1 of 10"

    with OpenAIServer(reply=reply) as server:
        cfg = _cfg({"grpo": {"openai_grader": str(tmp_path / "grader.json")}})
        cfg.judge.model, cfg.judge.base_url, cfg.judge.api_key_env = "judge", server.base_url, None
        cfg.judge.cache = False
        judge = judge_reward(cfg)
        rewards = bind_rewards(cfg, FormatCheck("json"), judge=judge)
        scores = score_all(rewards, ["It is Paris.", "Lyon"], [_row("Paris")] * 2)
        assert scores == {"judge": [pytest.approx(0.7), pytest.approx(0.1)]}
        assert len(server.chat_requests) == 2 and judge.calls == 2


def test_a_judge_reward_states_its_cost_from_the_judge_prices():
    from tunestack.evaluate.rewards import judge_estimate

    cfg = _cfg()
    cfg.judge.model, cfg.judge.price_input_per_m, cfg.judge.price_output_per_m = "j", 2.0, 8.0
    found = judge_estimate(cfg, calls=1000, prompt_tokens=300, answer_tokens=48)
    # 1000 x 300 input tokens at $2/M, 1000 x min(256, 64) output tokens at $8/M
    assert found["input_tokens"] == 300_000 and found["usd"] == pytest.approx(0.6 + 0.512)


@pytest.mark.integration
def test_grpo_on_every_weight_keeps_the_starting_model_as_its_reference(tiny_config: Path, tmp_path: Path):
    """With every weight training, TRL loads its frozen reference from the policy's folder: after the SFT
    checkpoint is merged in that would be the base, so the start is saved and named. The KL at the first step is
    then 0 (policy and reference are the same weights); against the base it would not be."""
    from tunestack.config import load_config
    from tunestack.pipeline import run_stages

    data = tmp_path / "choices.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in choice_rows(80, seed=5)))
    task = [f"data.path={data}", "evaluate.metrics=[choice]", "evaluate.format.type=none",
            "evaluate.max_new_tokens=6", "data.stratify_by=null", "train.evaluate_checkpoints=false"]
    sft = run_stages(load_config(tiny_config, [*task, "run.name=sft", "train.max_steps=20",
                                               "train.num_checkpoints=1"]), until="train")
    start = sft.require("train")["checkpoints"][-1]["path"]
    run = run_stages(load_config(tiny_config, [
        *task, "run.name=full", "train.method=grpo", "train.grpo.weights=full", f"train.init_from={start}",
        "train.max_steps=2", "train.micro_batch_size=8", "train.num_checkpoints=1", "train.learning_rate=1e-4",
        "train.grpo.kl=0.1", "train.grpo.max_new_tokens=6", "train.grpo.rewards=[{metric: choice}]"]), until="train")
    assert run.require("train")["grpo"]["reference"] == "a frozen copy of the starting model"
    assert (run.root / "train" / "reference" / "config.json").exists()
    logged = [json.loads(line) for line in (run.root / "train" / "metrics.jsonl").read_text().splitlines()]
    assert logged[0]["kl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.integration
def test_grpo_on_tool_calls_with_a_template_that_takes_each_rows_tools(tmp_path: Path):
    """Another shape of data: an OpenAI tool-calling file on a Qwen2.5-family model, whose template renders each
    row's tools, so the prompts go to TRL as rendered text (TRL passes one list of tools for all rows); rewarded by
    two tool-call metrics. The guard compares TRL's tokenization of every prompt with the served one before step
    one, and every sampled answer's mask is checked."""
    from families import build_family_model
    from openai_files import write_sft

    from tunestack.config import parse_config
    from tunestack.pipeline import run_stages
    from tunestack.train.grpo import trl_prompts
    import yaml

    fixture = write_sft(tmp_path / "data", n=32)
    folder = build_family_model("qwen2.5", tmp_path / "model", [json.dumps(r) for r in fixture.rows],
                                vocab_size=2000)
    raw = {"run": {"name": "grpo-tools", "runs_dir": str(tmp_path / "runs"), "seed": 0, "threads": 1},
           "model": {"name": str(folder)},
           "data": {"path": str(fixture.path), "eval_size": 6, "holdout_size": 3, "max_length": 3072,
                    "min_train_rows": 8},
           "train": {"method": "grpo", "max_steps": 2, "micro_batch_size": 8, "num_checkpoints": 1,
                     "learning_rate": 1e-3, "lora": {"r": 4, "alpha": 8}, "evaluate_checkpoints": False,
                     "grpo": {"group_size": 4, "max_new_tokens": 8,
                              "rewards": [{"metric": "tool_name"}, {"metric": "tool_arguments"}]}},
           "evaluate": {"batch_size": 8, "max_new_tokens": 8, "format": {"type": "none"},
                        "retention": {"quartz_examples": 2, "max_probes": 1}}}
    cfg = parse_config(yaml.safe_dump(raw), [])
    run = run_stages(cfg, until="train")
    grpo = run.require("train")["grpo"]
    assert [r["name"] for r in grpo["rewards"]] == ["tool_name", "tool_arguments"]
    assert grpo["loss_mask"]["answers"] == 2 * 8
    from tunestack.models import load_base
    from tunestack.rundir import read_jsonl

    _, tokenizer = load_base(cfg.model, tokenizer_only=True)
    rows = read_jsonl(run.root / "prepare" / "train.jsonl")
    assert any(r.get("tools") or any(m.get("tool_calls") for m in r["messages"]) for r in rows)
    assert all(isinstance(p, str) for p in trl_prompts(tokenizer, [r["messages"][:-1] for r in rows]))
    logged = [json.loads(line) for line in (run.root / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2] and all("rewards/tool_name/mean" in r for r in logged)
