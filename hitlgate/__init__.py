"""hitlgate: a policy-as-code decision engine for human-in-the-loop incident response.

AI agents propose response actions on non-human identities; Rego policies
classify each proposal by risk; the engine pauses the action until the
required humans approve and enforces the outcome with signed warrants.
"""

__version__ = "0.1.0"
