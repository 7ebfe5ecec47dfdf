"""The bundled learner: cold-start SFT, then GRPO on verifiable rewards (needs the ``torch`` extra).

It meets environments only through ``rewardgym.make_vec`` and the Gymnasium vector-env API.
"""
