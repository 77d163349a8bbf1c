"""ACD: queues, agents, skills, routing strategies, IVR flows, campaigns, statistics."""
