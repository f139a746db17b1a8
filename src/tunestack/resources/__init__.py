"""Data files shipped with tunestack: general probes, self-replay prompts, the results schema."""
