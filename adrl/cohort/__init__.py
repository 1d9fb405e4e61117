"""adrl.cohort"""
