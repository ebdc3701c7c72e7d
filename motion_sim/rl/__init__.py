"""RL fine-tuning maths: rewards (displacement, box collisions) and returns (paper Eq. 2-5)."""
