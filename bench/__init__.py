"""Side-by-side benchmarks (``glasschat bench ...``): each prints figures for glasschat and a
baseline measured in the same run, and their ratio. Speed lives here, never in unit tests.
"""
