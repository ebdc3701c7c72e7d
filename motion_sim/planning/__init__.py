"""AV planners and closed-loop policy evaluation against sim agents (paper Sec. 4.2)."""
