"""Command `assess`: is fine-tuning worth it? Entry point: `tunestack.assess.stage.run_assess`.

`categories` (one primary failure category per wrong answer), `verdict` (systematic or random, the verdict, the
training-set size), `sample` (the stratified draw) and `report` are pure (no torch); `stage` runs the model.
"""
