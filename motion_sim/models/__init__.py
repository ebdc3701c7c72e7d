"""The sim-agent policy pi(a | o): scene encoder, block-causal decoder, `SimAgentModel`."""
