"""Swagger UI's scripts and styles, served by the app itself.

The interactive docs at ``/api/v1/docs/`` then work on a machine with no
internet access, which is where many field-data servers run.
"""

from flask import Blueprint
from swagger_ui_bundle import swagger_ui_path

URL = "/swagger-ui"

blp = Blueprint(
    "swagger_ui", __name__, static_folder=swagger_ui_path, static_url_path=URL
)
