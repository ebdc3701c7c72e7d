"""Scenario readers (Scenario proto, WOMD tf.Example, GPUDrive JSON), scene building,
serialisation, the preprocess CLI, the tf.data pipeline and synthetic scenarios.

Modules are imported explicitly (e.g. `from motion_sim.data import scene_builder`); nothing heavy
is imported here.
"""
