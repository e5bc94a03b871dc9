"""Building the configured exporters (the one place boto3 is set up)."""

from __future__ import annotations

from gateway.config import Config
from gateway.export import DirectoryExporter, Exporter, S3Exporter


def configured_exporters(config: Config) -> list[Exporter]:
    exporters: list[Exporter] = []
    if config.export_dir is not None:
        exporters.append(DirectoryExporter(config.export_dir))
    if config.audit_s3_bucket:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=config.audit_s3_endpoint_url or None,
            region_name=config.audit_s3_region,
        )
        exporters.append(S3Exporter(config.audit_s3_bucket, config.audit_s3_prefix, client))
    return exporters
