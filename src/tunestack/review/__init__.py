"""Stage `review`: people review what machines wrote, in a local web app (`tunestack review CONFIG`).

Candidate training rows from `synth` are accepted, edited or rejected; model answers to eval prompts are rated 1-5,
blind to the model. Everything lives in one SQLite file (`store`); `export` writes the reviewed rows for `prepare`
and the ratings for `judge calibrate`. Modules: `store` (items, actions, the decide-once rule), `queues` (what is
imported from the run), `app` (the pages), `export` (the files), `command` (the CLI).
"""
