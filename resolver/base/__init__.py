"""The bottom of the house: primitives every other package may import, and which import nothing of Hearth.

``names`` normalises DNS names (lower case, IDNA, wire form); ``configspec`` declares config options once
(a dataclass field with its default, check and help text) and turns YAML into checked sections with
``FILE:LINE: key: problem`` errors. ``blocklists`` sits directly above this package and may use it.
``compiled`` holds the one switch (HEARTH_NO_ACCEL) for the optional C extensions.
May import: the standard library only.
"""
