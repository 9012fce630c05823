from django.db import models


class SearchKeyField(models.CharField):
    """A folded ASCII search key ("lefevre helene"). On PostgreSQL its column uses the bytewise
    "C" collation, so one btree index serves both prefix ranges and ORDER BY; SQLite compares
    bytewise already."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params
