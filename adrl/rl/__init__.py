"""adrl.rl"""
