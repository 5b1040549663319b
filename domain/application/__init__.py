"""The application services on top of the pure domain.

`cases` (command dispatch: `CaseService`), `queries` (bitemporal queries, a mixin of it),
`importer` (legacy history), `history` (`case history` entries), `payments` (payout accounts
and payment runs), `benefits` (benefit applications and delegations), and the stores they
need (`snapshots`, `transcodings`). `ports` holds what adapters may ask of them (`eventlog`
answers it from a store): relays and projections depend on the ports only, never on the
services. The pure domain (`domain.case`, `domain.events`, `domain.commands`, …) never
imports this package; projections, relays and entrypoints depend on it, never the other way
round.
"""
