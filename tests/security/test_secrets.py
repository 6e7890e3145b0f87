"""Secrets in data sources never leave the project file.

A project whose layers carry an inline PostgreSQL password, an ``authcfg``
id, and a web service URL with a password is uploaded and processed. The
job's feedback and output, every API answer about the project and its jobs,
and every log record written meanwhile must not hold any of them.
"""

import logging
import socket
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import job_list, new_project, upload

PG_PASSWORD = "Pg-s3cret-4711"
AUTHCFG = "k3yz9q1"
URL_PASSWORD = "wms-pw-0815"
SECRETS = (PG_PASSWORD, AUTHCFG, URL_PASSWORD)


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def layer(layer_id: str, provider: str, source: str, kind: str = "vector") -> str:
    return f"""
    <maplayer type="{kind}" geometry="Point" wkbType="Point">
      <id>{layer_id}</id>
      <datasource>{source}</datasource>
      <layername>{layer_id}</layername>
      <srs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">{provider}</provider>
    </maplayer>"""


def secret_project(port: int) -> bytes:
    postgres = (
        f"dbname='field' host=127.0.0.1 port={port} user='field' "
        f"password='{PG_PASSWORD}' sslmode=disable key='id' srid=4326 "
        'type=Point table="public"."trees" (geom)'
    )
    postgres_authcfg = (
        f"dbname='field' host=127.0.0.1 port={port} authcfg={AUTHCFG} "
        'key=\'id\' srid=4326 type=Point table="public"."bushes" (geom)'
    )
    wms = (
        "contextualWMSLegend=0&amp;crs=EPSG:3857&amp;format=image/png&amp;"
        f"layers=ortho&amp;password={URL_PASSWORD}&amp;styles&amp;"
        f"url=http://field:{URL_PASSWORD}@127.0.0.1:{port}/wms&amp;username=field"
    )
    layers = (
        layer("trees", "postgres", postgres)
        + layer("bushes", "postgres", postgres_authcfg)
        + layer("ortho", "wms", wms, kind="raster")
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <projectlayers>{layers}
  </projectlayers>
</qgis>
""".encode()


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}"


def api_texts(client: FlaskClient, user: dict[str, Any], pid: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    sdk = {"User-Agent": "sdk|py|0.18.0"}
    paths = [
        f"/api/v1/projects/{pid}/",
        "/api/v1/projects/",
        f"/api/v1/files/{pid}/",
        f"/api/v1/jobs/?project_id={pid}",
        "/api/v1/jobs/",
    ]
    for job in job_list(client, user, project_id=pid)["results"]:
        paths.append(f"/api/v1/jobs/{job['id']}/")
    for path in paths:
        for extra in ({}, sdk):
            response = client.get(path, headers={**user["headers"], **extra})
            assert response.status_code == 200, path
            texts[path] = response.get_data(as_text=True)
    return texts


def test_datasource_secrets_stay_out_of_jobs_answers_and_logs(
    app: Flask,
    client: FlaskClient,
    make_user,
    run_jobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = make_user("alice")
    pid = new_project(client, alice)
    response = upload(client, alice, pid, "project.qgs", secret_project(closed_port()))
    assert response.status_code == 201
    assert_no_secret("the upload answer", response.get_data(as_text=True))

    run_jobs()
    jobs = job_list(client, alice, project_id=pid)["results"]
    assert [job["status"] for job in jobs] == ["finished"] or all(
        job["status"] in ("finished", "failed") for job in jobs
    )
    detail = client.get(f"/api/v1/jobs/{jobs[0]['id']}/", headers=alice["headers"])
    # The job really looked at the layers: their sources are reported, masked.
    text = detail.get_data(as_text=True)
    assert "trees" in text and "bushes" in text
    assert "***" in text

    for path, body in api_texts(client, alice, pid).items():
        assert_no_secret(path, body)
    for record in caplog.records:
        assert_no_secret(f"log record {record.name}", record.getMessage())
        if record.exc_text:
            assert_no_secret(f"log traceback {record.name}", record.exc_text)
