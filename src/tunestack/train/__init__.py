"""Stage `train`: LoRA SFT through TRL, loss on the assistant answer only (EOS included), general examples mixed in,
checkpoints published as `checkpoints/step-NNNNNN/` with their tokenizer and chat template.

Entry point: `tunestack.train.stage.run_train`. `mapping` is pure (config -> library configs); `preflight` refuses a
run that cannot fit before weights load; `live` evaluates each checkpoint as it lands.
"""
