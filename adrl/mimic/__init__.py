"""adrl.mimic"""
