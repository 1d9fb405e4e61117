"""adrl.ais"""
