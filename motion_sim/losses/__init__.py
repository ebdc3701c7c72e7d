"""Loss classes: behaviour cloning (paper Eq. 1) and REINFORCE (paper Alg. 1, Eq. 2-5)."""
