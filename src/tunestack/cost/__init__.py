"""Stage `cost`: what fine-tuning costs (training, evaluation, serving) against the API it replaces, and when it pays.

Pure core: `prices` (the default GPU table and rules of thumb), `model` (figures with provenance, the formulas),
`inputs` (config and run manifests -> model inputs) and `report` (markdown; the plot imports matplotlib lazily).
The edge that reads and writes the run directory is `stage.run_cost`.
"""
