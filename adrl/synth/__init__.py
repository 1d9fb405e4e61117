"""adrl.synth"""
