"""Keras layers of the sim-agent policy: attention, transformer blocks, scene-token encoders."""
