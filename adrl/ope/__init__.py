"""adrl.ope"""
