"""Where finished files go (contract.md §7, "Storage"): small backends behind one interface.

`base` holds the interface and its error, `config` the [storage] section, `local`
and `s3` the backends (s3 imports boto3, the extra `s3`, only when opened).
"""
