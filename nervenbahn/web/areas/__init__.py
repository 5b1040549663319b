"""Each role's pages, one module per area, each with a `router` (listed in
`nervenbahn.web.app.AREAS`)."""
