"""Packaging a QGIS project for offline use in QField (the ``package`` job).

:mod:`.decisions` decides what happens to each layer, :mod:`.exportsources`
turns a layer into something :mod:`qfjobs.geodata.gpkg_export` can read,
:mod:`.filecopy` copies files that travel as they are, :mod:`.projectxml`
rewrites the project XML and :mod:`.builder` runs it all into one folder.
"""
