"""adrl.rl: offline agents on factored actions (method.md sections 3-4). Knows states, actions, rewards only.

- data.py: states table -> Transitions (the encode -> train contract of adrl/schemas.py)
- bcq.py, factored_bcq.py, adbcq.py: one config dataclass + one learner each; the update reads top to bottom
- dynamics.py: the projected dynamics + reward ensemble (method.md 4.4) and its validation report
- nets.py: MLPs, BCQ filters, joint enumeration, mixers
- batched.py: runs of one architecture stepped as one vectorised model (torch.func vmap over the learners' losses)
- train.py: runs, sweeps (batched groups, resumable, written run by run), checkpoints (models/train layout)
- policy.py: Policy (load / greedy / q_values / allowed_mask / action_probs), list_runs, greedy_matrix
"""
