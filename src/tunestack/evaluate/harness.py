"""lm-evaluation-harness tasks as a retention suite (`evaluate.retention.lm_eval`).

The tasks run through lm-eval's Python API (`lm_eval.simple_evaluate`) on the model being evaluated, not a copy of
it: on the `local` backend its loaded transformers model is handed to lm-eval's `HFLM` as it is (the same weights,
dtype and device; a checkpoint's adapter already in place), and on the `openai` backend (an endpoint, including the
server `tunestack serve --evaluate` checks) lm-eval's `local-chat-completions` model talks to the same endpoint.
Every item's score comes back with `log_samples`, ordered by the harness's `doc_id`, so that the base model and
each checkpoint pair item by item like the built-in suites. The harness's own aggregate is kept beside tunestack's
mean of the same per-item scores (they must agree), with the settings that change results: tasks, few-shot count,
chat template, limit, the metric, lm-eval's version.

Chat endpoints give no log-likelihoods: a `multiple_choice` or `loglikelihood` task on the `openai` backend is
skipped with the reason, as quartz is; a `generate_until` task runs anywhere. The `vllm` backend is skipped (run the
same tasks through `tunestack serve --evaluate`, whose endpoint lm-eval reaches).
"""

from __future__ import annotations

import logging

from tunestack.errors import ConfigError, MissingDependencyError
from tunestack.fingerprint import package_version

log = logging.getLogger("tunestack")


def lm_eval_version() -> str | None:
    return package_version("lm_eval")


def harness_model(generator, spec):
    """lm-eval's model for this generator, or (None, why) where the backend cannot run the tasks."""
    if generator.name == "local":
        from lm_eval.models.huggingface import HFLM

        model = generator.model
        return HFLM(pretrained=model, tokenizer=generator.tokenizer, batch_size=spec.batch_size,
                    device=str(model.device)), None
    if generator.name == "openai":
        from lm_eval.models.openai_completions import LocalChatCompletion

        settings = generator.client.settings
        return LocalChatCompletion(model=settings.model, base_url=f"{settings.base_url.rstrip('/')}/chat/completions",
                                   tokenizer_backend=None, tokenized_requests=False,
                                   num_concurrent=settings.max_concurrency, max_retries=settings.max_retries), None
    return None, (f"lm-eval tasks run on the local and openai backends, not {generator.name}: evaluate the served "
                  "model with tunestack serve --evaluate")


def task_manager(spec):
    """lm-eval's task registry, with the user's task folder where one is named."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=spec.include_path) if spec.include_path else TaskManager()


def run_tasks(lm, spec, seed: int) -> dict:
    """lm-eval's own results of `spec.tasks` on `lm`, with every item's scores."""
    from lm_eval import simple_evaluate

    return simple_evaluate(model=lm, tasks=list(spec.tasks), num_fewshot=spec.num_fewshot, limit=spec.limit,
                           log_samples=True, task_manager=task_manager(spec),
                           apply_chat_template=spec.apply_chat_template,
                           fewshot_as_multiturn=spec.apply_chat_template and spec.num_fewshot is not None,
                           bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                           fewshot_random_seed=seed, verbosity="WARNING")


def task_scores(results: dict, task: str, metric: str | None) -> dict:
    """One task's per-item scores in doc_id order (the metric asked for, else the task's first), the harness's own
    aggregate of that metric, and a generative task's answers as the harness scored them (after its filters)."""
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    if not samples:
        return {"n": 0, "metric": metric, "accuracy": None, "harness": None, "values": [], "answers": None}
    metric = metric or samples[0]["metrics"][0]
    if metric not in samples[0]:
        raise ConfigError([("evaluate.retention.lm_eval.metric", f"{task} has no per-item {metric!r}; it has "
                                                                 f"{', '.join(samples[0]['metrics'])}")])
    values = [float(s[metric]) for s in samples]
    reported = results["results"][task].get(f"{metric},{samples[0]['filter']}")
    generated = all(isinstance(s["filtered_resps"][0], str) for s in samples)
    return {"n": len(values), "metric": metric, "accuracy": sum(values) / len(values),
            "harness": None if reported is None else float(reported), "values": values,
            "answers": [s["filtered_resps"][0] for s in samples] if generated else None}


def score_lm_eval(generator, spec, seed: int = 0) -> dict:
    """The suite's scores: accuracy over every item of every task (each item's chosen metric), per task the harness's
    own figure beside tunestack's mean, and the settings; `correct` holds the per-item scores, tasks in order."""
    if not spec.tasks:
        return {"n": 0, "accuracy": None}
    if lm_eval_version() is None:
        raise MissingDependencyError("lm_eval", "lmeval")
    lm, why = harness_model(generator, spec)
    if lm is None:
        return {"n": 0, "accuracy": None, "skipped": why}
    if generator.name == "openai":  # lm-eval reaches it through chat completions, which give no log-likelihoods
        needs = [t for t, kind in task_output_types(spec).items() if kind != "generate_until"]
        if needs:
            return {"n": 0, "accuracy": None,
                    "skipped": f"{', '.join(needs)} need log-likelihoods, which a chat endpoint does not give"}
    results = run_tasks(lm, spec, seed)
    tasks, scores = {}, []
    for task in sorted(results["samples"]):  # the leaf tasks (a group such as mmlu names many)
        found = task_scores(results, task, spec.metric)
        scores += found.pop("values")
        tasks[task] = {**found, "num_fewshot": (results.get("n-shot") or {}).get(task)}
    return {"n": len(scores), "accuracy": sum(scores) / len(scores) if scores else None, "tasks": tasks,
            "settings": {"tasks": list(spec.tasks), "num_fewshot": spec.num_fewshot, "limit": spec.limit,
                         "apply_chat_template": spec.apply_chat_template, "metric": spec.metric,
                         "include_path": spec.include_path, "lm_eval": lm_eval_version(),
                         "chat_template": getattr(lm, "chat_template", lambda *_: None)(spec.apply_chat_template)
                         if generator.name == "local" else "the server's"},
            "correct": scores}


def task_output_types(spec) -> dict[str, str]:
    """Each task's `output_type` as the harness reads its config."""
    found = task_manager(spec).load(list(spec.tasks))["tasks"]
    return {name: task.config.output_type for name, task in found.items()}
