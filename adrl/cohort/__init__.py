"""adrl.cohort: MIMIC-III interim events -> Sepsis-3 trajectories (../shared/docs/cohort.md sections 3-8).

Public API:
- ``featurize.Featurizer(params, spec, normalization=None, action_edges=None)`` / ``Featurizer.load(params)``:
  ``fz(static, onsets, events, until=None) -> DataFrame`` of normalised state rows, vectorised over stays;
- ``incremental.IncrementalFeaturizer(fz, static, onsets)``: ``add(new_events)``, ``rows(until)`` -> the same rows
  bin by bin, each call processing only the new events (simulator roll-outs);
- ``build.build_cohort(static, events, params, spec, load_chunk=None) -> CohortResult`` and
  ``build.write_outputs(result, params, processed_dir, flow_path)``;
- ``mimic_adapter.build_spec(params) -> spec.CohortSpec`` (clinical data files resolved for a recipe);
- ``sofa`` (SOFA per bin), ``onset`` (antibiotics, cultures, pairing), ``treatments`` (fluids, NE-eq).
Keep this module light: importing ``adrl.cohort`` imports nothing heavy.
"""
