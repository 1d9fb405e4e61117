"""adrl.report"""
