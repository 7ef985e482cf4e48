"""Who is asking and what their profile allows.

``access`` (which source addresses may use the resolver), ``clients`` (a query's device: address, MAC from
leases or the EDNS0 option, subnet), ``profiles`` (the presets and a profile's data), ``schedule`` (bedtime,
homework time), ``safesearch`` and ``bypass`` (the names rewritten or answered negatively), ``blocking``
(the decision record and the ``blocking`` config section), ``profile_policy`` (one profile's verdict on a
name) and ``views`` (every profile's policy, picked per client).
May import: ``resolver.base``, ``blocklists``.
"""
