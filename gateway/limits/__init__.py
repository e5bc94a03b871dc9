"""Abuse limits: token buckets on issuance and page redirects, shared by replicas through the store."""
