"""adrl.ope: off-policy evaluation and model selection on arrays (method.md section 5).

- behaviour: KnnBehaviour (fit / predict_proba, joint or factored, all 25 columns), behaviour_metrics
- estimators: make_logged (validated logged data), evaluate_greedy (WIS / ESS / IS / diagnostics of many
  greedy candidates at once), pdwis, resample_counts + bootstrap (paired), clinician_value, diagnose
- estimators also: wdr / wdr_terms (weighted doubly robust with a model's Q and V), fqe_start_values
- selection: pareto_front, select, cutoff_sensitivity
- audit: spearman, audit (Spearman, regret, top-5 precision against true values), winner
- workflow: the evaluate stage's steps (split_arrays, fit_behaviours, score_candidates / score_runs,
  select_models (evaluate.select_by), model_scores / add_model_scores (FQE, WDR from model Q arrays),
  evaluate_policies, build_test_table, run_audit, promotion_flags)

Knows nothing of networks: candidate policies arrive as arrays of greedy actions, FQE as arrays of Q values.
"""
