"""The CDNs' own key stores, managed by the gateway: CloudFront public keys and key groups (``cloudfront_keys``)."""
