"""End-to-end jobs (installed as ``samic_vos.pipelines``): thin compositions of library stages."""
