"""Exactly-once writes for requests that carry an ``Idempotency-Key``.

``policy`` says what a key is, what makes two requests the same, and what is
stored; ``records`` keeps the stored responses; ``step`` is what the
transaction layer calls around the handler: before it (take the key's lock,
look the key up), and before the commit (store the response with the writes).
"""
