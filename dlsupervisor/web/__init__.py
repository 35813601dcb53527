"""The web child (contract.md §8): downloads by signed link, a dashboard, a JSON API, metrics.

`settings` and `links` are light (the master and the workers import them); `app` and
`server` need the `web` extra and are imported in the web child only.
"""
