"""Bitcoin Script for digit bounties: primitives, the network-to-script compiler, slot contracts,
transaction builders, verification and chain backends.

This package takes an integer model as plain arrays (the `.npz` artifact format shared with `classifier`)
and never imports `classifier` or Django.
"""
