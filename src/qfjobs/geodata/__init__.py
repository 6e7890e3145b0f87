"""Vector data work without QGIS: packaging into GeoPackage, applying edits."""
