"""motion_sim: MotionLM-style sim agents with RL fine-tuning (Peng et al. 2024)."""
