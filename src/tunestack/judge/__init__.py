"""LLM-as-judge: an OpenAI-compatible endpoint client (`endpoint`), rubrics and score parsing (`rubric`), agreement
statistics with bootstrap intervals (`calibrate`), and the `judge calibrate` command (`stage`)."""
