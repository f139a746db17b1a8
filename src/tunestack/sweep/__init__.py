"""`tunestack sweep`: experiments over data composition and training settings on Optuna (see `stage`)."""
