"""Selection picks the known-best checkpoint on the weighted score with floors, not the lowest loss."""

from tunestack.select.choose import choose


def row(name, task, fmt, retention, loss=None, kind="checkpoint"):
    return {"name": name, "kind": kind, "task_accuracy": task, "field_accuracy": task, "format_compliance": fmt,
            "general_retention": retention, "train_loss": loss}


def test_picks_best_eligible_not_lowest_loss_nor_highest_accuracy():
    rows = [row("base", 0.05, 0.3, 1.0, kind="base"),
            row("step-1", 0.60, 0.97, 0.99, loss=0.5),
            row("step-2", 0.78, 0.99, 0.97, loss=0.3),
            row("step-3", 0.82, 0.99, 0.80, loss=0.1)]  # highest accuracy, lowest loss, but forgot
    decision = choose(rows, {"task_accuracy": 0.5, "format_compliance": 0.25, "general_retention": 0.25}, 0.95)
    assert decision["chosen"] == "step-2"
    verdicts = {t["name"]: t["verdict"] for t in decision["table"]}
    assert "below the floor" in verdicts["step-3"]
    assert "lower weighted score" in verdicts["step-1"]
    assert "step-3" in decision["pareto_front"] and "step-2" in decision["pareto_front"]


def test_format_regression_makes_a_checkpoint_ineligible():
    rows = [row("base", 0.1, 0.9, 1.0, kind="base"), row("step-1", 0.9, 0.8, 1.0)]
    decision = choose(rows, {"task_accuracy": 1.0}, 0.95)
    assert decision["chosen"] == "base" and "base model is kept" in decision["reason"]
