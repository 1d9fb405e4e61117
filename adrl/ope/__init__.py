"""adrl.ope: off-policy evaluation and model selection on arrays (method.md section 5).

- behaviour: KnnBehaviour (fit / predict_proba, joint or factored, all 25 columns), behaviour_metrics
- estimators: make_logged (validated logged data), evaluate_greedy (WIS / ESS / IS / diagnostics of many
  greedy candidates at once), pdwis, resample_counts + bootstrap (paired), clinician_value, diagnose
- selection: pareto_front, select, cutoff_sensitivity
- workflow: the evaluate stage's steps (split_arrays, fit_behaviours, score_candidates / score_runs,
  select_models, evaluate_policies, build_test_table)

Knows nothing of networks: candidate policies arrive as arrays of greedy actions.
"""
