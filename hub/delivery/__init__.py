"""Delivery: how an accepted message leaves the hub. Import the module you need; this
package re-exports nothing, so every import names where the code lives.

- message.py    the MIME a row becomes (built, or a client's own message relayed)
- transport.py  one SMTP session (TLS, login, a transaction) and the connection pool
- outbox.py     claiming waiting rows, drains, handing rows back, asking for a drain
- attempt.py    one message: servers in turn, the outcome recorded (or abandoned)
- policy.py     server order and health, the retry schedule
- bounces.py    reading SMTP replies: permanent or not, which failure type
- throttle.py   per-server send limits shared by every worker

Nothing here imports the admin, the API or an EDM app (import-linter checks it)."""
