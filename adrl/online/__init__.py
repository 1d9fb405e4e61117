"""Online RL on DeepMind Control point_mass (method.md 4.11, E6): the action grid and environment (env),
AD-DQN / DecQN / joint DQN (agents), one run (train), the sweep (sweep), typed parameters (params) and the
summary and figure (results). Needs the optional dm-control extra: pip install -e '.[online]'."""
