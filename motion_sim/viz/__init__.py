"""Pictures of rollouts: view (numpy), collision / off-road events, figure, animation."""
