"""The keys wing: who signs, and what a signature grants.

The engine's Ed25519 signing keys and their rotation (:mod:`.keyring`), the
warrants they sign (:mod:`.warrants`, compact JWS), the HTTP service's API
keys (:mod:`.apikeys`) and the refusal of the public demo keys
(:mod:`._demokeys`).
"""
