"""The web application for the people at the counters (issue 16): branch offices,
caseworkers, the fund, the canton and auditors. `nervenbahn.web.app.install_web` serves it
on the API's app; `docs/web.md` describes it."""
