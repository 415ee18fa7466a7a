"""The gateway's peer (scenario 3): a plain DRF `ModelViewSet` over one table, as a Django shop
would write it, served by the same `hive serve --role gateway` command with the same middleware
and the same API key authentication class. Only the bench's peer server loads it
(DJANGO_SETTINGS_MODULE=bench.peer.settings); the hive's own settings never install it, so no
production process has a route to it."""
