"""Reading and checking QGIS projects without QGIS (lxml, GDAL via pyogrio).

A pure library: no Flask, no database. The job entry point is
:func:`qfjobs.qgis.inspect.inspect_project`.
"""
