"""The baseline for the jobs-list benchmark: bare Flask returning a fixed page.

The page has the same size and shape as ``GET /api/v1/jobs/`` with 20 jobs,
so the comparison shows what qfjobs adds (authentication, the SQL query,
serialisation) over Flask and gunicorn themselves.
"""

import json
import os

from flask import Flask, Response

app = Flask(__name__)
PAGE = open(os.environ["BENCH_PAGE_FILE"], "rb").read()


@app.get("/page/")
def page() -> Response:
    return Response(PAGE, mimetype="application/json")


if __name__ == "__main__":
    print(json.loads(PAGE)["count"])
