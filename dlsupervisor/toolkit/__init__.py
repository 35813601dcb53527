"""The export toolkit (contract.md §7): streamed CSV/XLSX outputs, zips, storage, safe names.

An export hook reaches it through DownloadTaskBase.open_output / store_file /
store_zip; the worker attaches a Toolkit (session.py) to its handler.
"""
